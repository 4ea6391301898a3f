"""The OpenAI-compatible FastAPI app: `POST /v1/chat/completions`, `GET /v1/models`, `GET /health`.

The app is a thin shell around `BatchWorker`: handlers validate and translate (`translate.py`),
queue the request, and wait for it on the event loop without blocking it, either for a JSON body
or for server-sent events fed from the worker thread. A request that outlives its time limit, or
whose client disconnects, has its cancel flag set, which stops its row inside the running batch.

Streaming errors follow one rule: until the first token, every failure (validation, images,
tokenization, limits, a full queue, a failure in the worker, the time limit) is an HTTP status with
the JSON error body, so a client never has to parse a 200 stream to learn that its request was
refused; the response (status 200) starts with the first token, and a failure after that is an
`error` event followed by `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from mqt_vlm.budgets import resolve_default
from mqt_vlm.errors import MQTError
from mqt_vlm.inference.auto_budget import BudgetPolicy, ConfidenceEscalation
from mqt_vlm.inference.cache import VisualTokenCache
from mqt_vlm.inference.params import GenerationResult
from mqt_vlm.serve import openai_format as fmt
from mqt_vlm.serve.config import ServeConfig
from mqt_vlm.serve.errors import APIError, install_error_handlers
from mqt_vlm.serve.limits import BodySizeLimit
from mqt_vlm.serve.schemas import ChatCompletionRequest
from mqt_vlm.serve.translate import PromptTokenizer, Translated, context_length, translate
from mqt_vlm.serve.worker import BatchWorker, QueueFull, RequestTimeout, WorkerStopped

_END = object()
_GRACE_S = 1.0  # the worker stops a row at its deadline; give its answer this long to arrive


@dataclass
class ServerState:
    model: Any
    processor: Any
    config: ServeConfig
    worker: BatchWorker
    cache: VisualTokenCache
    policy: BudgetPolicy
    started: int
    prompts: PromptTokenizer


def _as_api_error(exc: BaseException) -> APIError:
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, MQTError):
        return APIError(400, str(exc), code="invalid_value")
    if isinstance(exc, QueueFull):
        return APIError(503, str(exc), code="overloaded")
    if isinstance(exc, (RequestTimeout, TimeoutError)):
        return APIError(503, "The request did not finish within the server's time limit.", code="timeout")
    if isinstance(exc, WorkerStopped):
        return APIError(503, str(exc), code="unavailable")
    return APIError(500, f"Generation failed ({type(exc).__name__}); the server is still running.", code="internal_error")


def _check_result(result: GenerationResult) -> GenerationResult:
    if result.finish_reason == "timeout":
        raise APIError(503, "The request did not finish within the server's time limit.", code="timeout")
    return result


class _EventLoopStreamer:
    """Hands text from the worker thread to the request's asyncio queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
        self.loop, self.queue = loop, queue

    def push(self, item: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: the client is gone
            pass

    def on_text(self, row: int, delta: str) -> None:
        self.push(delta)

    def on_finish(self, row: int, result: GenerationResult) -> None:
        pass


async def _until(awaitable: Any, future: Future, translated: Translated, request: Request) -> Any:
    """`awaitable`'s value (None if it raised: `future` says why), or a 503 at the deadline; a client
    that disconnects cancels its row."""
    task = asyncio.ensure_future(awaitable)
    cancel = translated.request.cancel
    deadline = (translated.request.deadline or time.monotonic()) + _GRACE_S
    try:
        while not task.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or await request.is_disconnected():
                if cancel is not None:
                    cancel.set()
                future.cancel()
                raise APIError(503, "The request did not finish within the server's time limit.", code="timeout")
            await asyncio.wait({task}, timeout=min(remaining, 0.25))
        return None if task.exception() is not None else task.result()
    finally:
        task.cancel()


def _result(future: Future) -> GenerationResult:
    try:
        return _check_result(future.result())
    except BaseException as exc:
        raise _as_api_error(exc) from None


async def _wait(future: Future, translated: Translated, request: Request) -> GenerationResult:
    await _until(asyncio.wrap_future(future), future, translated, request)
    return _result(future)


def _submit(state: ServerState, translated: Translated, streamer: Any = None) -> Future:
    try:
        return state.worker.submit(translated.request, auto=translated.auto, streamer=streamer,
                                   template_ids=translated.template_ids)
    except (QueueFull, WorkerStopped) as exc:
        raise _as_api_error(exc) from None


async def _stream(state: ServerState, translated: Translated, request: Request, request_id: str, created: int,
                  include_usage: bool) -> StreamingResponse:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    streamer = _EventLoopStreamer(loop, queue)
    future = _submit(state, translated, streamer)
    future.add_done_callback(lambda _: streamer.push(_END))
    name = state.config.model_name
    cancel = translated.request.cancel
    first = await _until(queue.get(), future, translated, request)  # before the first token: errors are statuses
    if first is _END:
        _result(future)

    async def events() -> AsyncIterator[str]:
        finished = False
        try:
            yield fmt.chunk(name, request_id, created, {"role": "assistant", "content": ""})
            if first is not _END:
                yield fmt.chunk(name, request_id, created, {"content": first})
            deadline = (translated.request.deadline or time.monotonic()) + _GRACE_S
            while first is not _END:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=max(deadline - time.monotonic(), 0.001))
                except TimeoutError:
                    yield fmt.sse(APIError(503, "The request did not finish within the time limit.", code="timeout").body())
                    break
                if item is _END:
                    break
                yield fmt.chunk(name, request_id, created, {"content": item})
            if future.done():
                try:
                    result = _check_result(future.result())
                except BaseException as exc:
                    yield fmt.sse(_as_api_error(exc).body())
                else:
                    if translated.auto and result.text:  # auto answers are known only once accepted
                        yield fmt.chunk(name, request_id, created, {"content": result.text})
                    yield fmt.chunk(name, request_id, created, {}, fmt.FINISH_REASONS.get(result.finish_reason, "stop"),
                                    result)
                    if include_usage:
                        yield fmt.chunk(name, request_id, created, result=result, usage_only=True)
            yield fmt.sse("[DONE]")
            finished = True
        finally:
            if not finished and cancel is not None:  # the client went away mid-stream
                cancel.set()
            if not future.done():
                if cancel is not None:
                    cancel.set()
                future.cancel()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def create_app(model: Any, processor: Any, config: ServeConfig | None = None,
               policy: BudgetPolicy | None = None) -> FastAPI:
    """An app serving `model`; the worker thread starts and stops with the app's lifespan."""
    config = config or ServeConfig()
    default_budget = int(model.config.default_num_visual_tokens)
    # the budget of a request that names none, checked at start-up, not on every request
    served_default = resolve_default(config.default_visual_tokens, default_budget, processor.num_queries,
                                     allow_auto=True, option="--visual-tokens")
    policy = policy or ConfidenceEscalation(config.auto)
    cache = VisualTokenCache(config.cache_bytes)
    prompts = PromptTokenizer(processor, context_length(model))
    worker = BatchWorker(model, processor, cache, policy, max_batch_size=config.max_batch_size,
                         batch_wait_s=config.batch_wait_ms / 1000, max_queue=config.max_queue,
                         max_prompt_tokens=config.max_prompt_tokens, max_padding=config.max_padding)
    state = ServerState(model, processor, config, worker, cache, policy, fmt.now(), prompts)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker.start()
        try:
            yield
        finally:
            worker.stop()
            prompts.close()

    docs = config.api_docs  # off by default: the schema maps the API for anyone who asks
    app = FastAPI(title="mqt-vlm", version="0.1.0", lifespan=lifespan, docs_url="/docs" if docs else None,
                  redoc_url="/redoc" if docs else None, openapi_url="/openapi.json" if docs else None)
    app.state.mqt = state
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes, timeout_s=config.body_timeout_s)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> JSONResponse | StreamingResponse:
        translated = await translate(body, config, prompts, default_budget, policy)
        request_id, created = fmt.completion_id(), fmt.now()
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return await _stream(state, translated, request, request_id, created, include_usage)
        result = await _wait(_submit(state, translated), translated, request)
        return JSONResponse(fmt.completion(result, config.model_name, request_id, created))

    def _model_card() -> dict[str, Any]:
        return {"id": config.model_name, "object": "model", "created": state.started, "owned_by": "mqt-vlm",
                "max_visual_tokens": processor.num_queries,
                "default_visual_tokens": served_default,
                "auto_visual_tokens": config.auto.schedule(processor.num_queries)}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [_model_card()]}

    @app.get("/v1/models/{model_id}")
    async def get_model(model_id: str) -> dict[str, Any]:
        if model_id != config.model_name:
            raise APIError(404, f"The model {model_id!r} does not exist.", code="model_not_found", param="model")
        return _model_card()

    @app.get("/health")
    async def health() -> JSONResponse:
        ok = worker.alive
        body = {"status": "ok" if ok else "unavailable", "model": config.model_name,
                "max_visual_tokens": processor.num_queries, "worker": worker.stats(), "cache": cache.stats().as_dict()}
        return JSONResponse(body, status_code=200 if ok else 503)

    return app
