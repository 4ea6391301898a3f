"""A validated `ChatCompletionRequest` -> a `GenerationRequest` the worker can run.

All checks that depend only on the request happen here, before it is queued, so a bad request
never reaches the model's thread and gets its HTTP error before any response (streamed or not)
starts: model name, unsupported options, max_tokens, the budget (an int in 1..M or "auto"),
message roles, text that is not valid Unicode, the image count (before any image is decoded), the
prompt's size in bytes (before tokenizing), its size in tokens and against the model's context
length (after tokenizing), and each image (decoded and pre-padded off the event loop, within the
size limits). The cheap checks come first, so a huge or hostile request is refused for little.

Tokenization runs on a thread of its own with a copy of the tokenizer (`PromptTokenizer`): fast
tokenizers are not safe to share across threads, and the model's thread must never spend its time
on a client's text. It tokenizes once, with one image token per image; the worker repeats each to
the row's budget (`inference.batch.expand_image_tokens`), so "auto" escalation never tokenizes again.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import re
import threading
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from mqt_vlm.budgets import AUTO, resolve_default
from mqt_vlm.errors import MQTError
from mqt_vlm.inference.auto_budget import AutoBudget, BudgetPolicy
from mqt_vlm.inference.params import GenerationRequest, SamplingParams
from mqt_vlm.inference.prompting import build_prompt, user_text
from mqt_vlm.serve.config import ServeConfig
from mqt_vlm.serve.errors import APIError
from mqt_vlm.serve.images import load_request_image
from mqt_vlm.serve.schemas import ChatCompletionRequest, ImagePart, Message

log = logging.getLogger("mqt_vlm.serve")
T = TypeVar("T")
_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON may carry lone surrogates ("\\ud800"); tokenizers raise on them
DECODE_SLOTS = max(1, min(4, os.cpu_count() or 1))  # images decoded at once: bounds the memory of worst-case images


@dataclass
class Translated:
    request: GenerationRequest
    auto: AutoBudget | None  # the escalation of an "auto" request with images
    template_ids: list[int] | None = None  # prompt ids with one image token per image


class PromptTokenizer:
    """Tokenizes prompts on one thread of its own, with its own copy of the processor's tokenizer.

    Also holds the other per-server resources of `translate`: the model's context length and a
    bound on concurrent image decodes.
    """

    def __init__(self, processor: Any, context_length: int | None = None, decode_slots: int = DECODE_SLOTS) -> None:
        self.processor = processor
        self.context_length = context_length
        self._copy = copy.deepcopy(processor)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="mqt-tokenize")
        self.decode_slots = asyncio.Semaphore(decode_slots)

    async def template_ids(self, prompt: str) -> list[int]:
        """Token ids of `prompt` with one image token per `<image>`."""
        count = prompt.count(self._copy.image_token)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._copy.tokenize_prompt, prompt, [1] * count)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def context_length(model: Any) -> int | None:
    """The language model's `max_position_embeddings` (None when the config has none)."""
    config = getattr(model, "config", None)
    text_config = getattr(config, "text_config", None) or config
    value = getattr(text_config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


async def _within(deadline: float, work: Awaitable[T]) -> T:
    """`work`, or a 503 once the request's time limit has passed."""
    try:
        return await asyncio.wait_for(work, timeout=max(deadline - time.monotonic(), 0.0))
    except TimeoutError:
        raise APIError(503, "The request did not finish within the server's time limit.", code="timeout") from None


def check_text(text: str, param: str) -> None:
    match = _SURROGATE.search(text)
    if match is not None:
        raise APIError(400, f"The text holds an unpaired UTF-16 surrogate ({match.group()!r} at character "
                            f"{match.start()}); send valid Unicode.", code="invalid_text", param=param)


def _check_options(body: ChatCompletionRequest, config: ServeConfig) -> None:
    if body.model is not None and body.model != config.model_name:
        raise APIError(404, f"The model {body.model!r} does not exist; this server serves {config.model_name!r}.",
                       code="model_not_found", param="model")
    if body.n not in (None, 1):
        raise APIError(400, "Only n = 1 is supported.", code="unsupported_value", param="n")
    if body.logprobs:
        raise APIError(400, "logprobs are not supported by this server.", code="unsupported_value", param="logprobs")
    if body.tools:
        raise APIError(400, "Tool calls are not supported by this server.", code="unsupported_value", param="tools")
    if len(body.messages) > config.max_messages:
        raise APIError(400, f"At most {config.max_messages} messages are allowed, got {len(body.messages)}.",
                       code="too_many_messages", param="messages")


def sampling_params(body: ChatCompletionRequest, config: ServeConfig) -> SamplingParams:
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    param = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
    if max_tokens is None:
        max_tokens = config.default_max_tokens
    if not 1 <= max_tokens <= config.max_tokens_limit:
        raise APIError(400, f"{param} must be in 1..{config.max_tokens_limit}, got {max_tokens}.",
                       code="invalid_value", param=param)
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    for s in stop:
        check_text(s, "stop")
    try:
        return SamplingParams(
            max_new_tokens=max_tokens,
            temperature=float(body.temperature) if body.temperature is not None else 0.0,
            top_p=float(body.top_p) if body.top_p is not None else 1.0,
            top_k=body.top_k or 0,
            stop=stop,
            seed=body.seed,
        )
    except MQTError as exc:
        raise APIError(400, str(exc), code="invalid_value") from None


def resolve_budget(body: ChatCompletionRequest, config: ServeConfig, num_queries: int, default: int,
                   policy: BudgetPolicy) -> tuple[int, AutoBudget | None]:
    """(first budget, the escalation if "auto"). The budget is never guessed: body, then server
    default, then model default."""
    value: Any = body.visual_tokens
    if value is None:
        value = config.default_visual_tokens
    try:
        budget = resolve_default(value, default, num_queries, allow_auto=True, option="visual_tokens")
    except MQTError as exc:
        raise APIError(400, f"visual_tokens must be an int in 1..{num_queries}, \"M\" (or \"max\") or \"auto\": {exc}",
                       code="invalid_visual_tokens", param="visual_tokens") from None
    if budget == AUTO:
        auto = AutoBudget(policy, num_queries)
        return auto.budget, auto
    return int(budget), None


def _message_parts(message: Message, index: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(parts for user_text, [(url, param)] for images) of one message."""
    content = message.content
    if content is None:
        if message.role == "assistant":
            return [("text", "")], []
        raise APIError(400, f"messages[{index}] has no content.", code="invalid_value", param=f"messages.{index}.content")
    if isinstance(content, str):
        return [("text", content)], []
    parts: list[tuple[str, str]] = []
    urls: list[tuple[str, str]] = []
    for j, part in enumerate(content):
        if isinstance(part, ImagePart):
            if message.role != "user":
                raise APIError(400, "Only user messages may contain images.", code="invalid_value",
                               param=f"messages.{index}.content.{j}")
            urls.append((part.image_url.url, f"messages.{index}.content.{j}.image_url.url"))
            parts.append(("image", ""))
        else:
            parts.append(("text", part.text))
    return parts, urls


def _check_prompt_tokens(template_ids: list[int], images: int, budget: int, auto: AutoBudget | None,
                         params: SamplingParams, config: ServeConfig, context: int | None) -> None:
    """Prompt limits at the largest budget the request may reach (auto escalates up to its largest)."""
    largest = auto.largest() if auto is not None else budget
    worst = len(template_ids) + images * (max(largest, budget) - 1)
    if worst > config.max_prompt_tokens:
        raise APIError(400, f"The prompt needs {worst} tokens (text + visual), more than the limit of "
                            f"{config.max_prompt_tokens} (--max-prompt-tokens); shorten it, send fewer images or use "
                            "a smaller budget.", code="prompt_too_long", param="messages")
    if context is not None and worst + params.max_new_tokens > context:
        raise APIError(400, f"The prompt needs {worst} tokens and max_tokens asks for {params.max_new_tokens} more: "
                            f"{worst + params.max_new_tokens} is over the model's context length of {context} tokens "
                            "(max_position_embeddings); shorten the prompt, lower max_tokens or use a smaller budget.",
                       code="context_length_exceeded", param="messages")


async def translate(body: ChatCompletionRequest, config: ServeConfig, prompts: PromptTokenizer, default_budget: int,
                    policy: BudgetPolicy) -> Translated:
    """Validate and convert; raises APIError (4xx) for anything the client must fix."""
    deadline = time.monotonic() + config.request_timeout_s  # the clock starts when the request arrives
    processor = prompts.processor
    _check_options(body, config)
    params = sampling_params(body, config)
    budget, auto = resolve_budget(body, config, processor.num_queries, default_budget, policy)
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    urls: list[tuple[str, str]] = []
    text_bytes = 0
    for i, message in enumerate(body.messages):
        parts, message_urls = _message_parts(message, i)
        urls += message_urls
        if len(urls) > config.max_images_per_request:
            raise APIError(400, f"At most {config.max_images_per_request} images per request are allowed "
                                "(--max-images).", code="too_many_images", param="messages")
        try:
            text = user_text(parts)
        except MQTError as exc:
            raise APIError(400, str(exc), code="invalid_value", param=f"messages.{i}.content") from None
        limit = config.prompt_bytes_limit
        # a character is at least one byte: 15 MB of text is refused without encoding it
        text_bytes += len(text) if len(text) > limit else len(text.encode("utf-8", "surrogatepass"))
        if text_bytes > limit:
            raise APIError(400, f"The messages hold more than {limit:,} bytes of text, the limit "
                                "(--max-prompt-bytes); shorten them.", code="prompt_too_long", param="messages")
        check_text(text, f"messages.{i}.content")
        if message.role in ("system", "developer"):
            if turns:
                raise APIError(400, "System messages must come before the conversation.", code="invalid_value",
                               param=f"messages.{i}")
            system.append(text)
        else:
            turns.append((message.role, text))
    try:
        prompt = build_prompt(turns, processor, config.template, "\n".join(system) or None)
    except MQTError as exc:
        raise APIError(400, str(exc), code="invalid_messages", param="messages") from None
    try:
        template_ids = await _within(deadline, prompts.template_ids(prompt))
    except APIError:
        raise
    except Exception as exc:  # noqa: BLE001 - a tokenizer that chokes on a client's text fails that request alone
        log.warning("tokenizing a prompt failed: %r", exc)
        raise APIError(400, f"The messages could not be tokenized ({type(exc).__name__}).", code="invalid_text",
                       param="messages") from None
    auto = auto if urls else None  # nothing to budget without images
    _check_prompt_tokens(template_ids, len(urls), budget if urls else 0, auto, params, config, prompts.context_length)

    async def load(url: str, param: str) -> Any:
        async with prompts.decode_slots:
            return await load_request_image(url, config, param, processor.image_processor)

    images = [await _within(deadline, load(url, param)) for url, param in urls]
    request = GenerationRequest(
        prompt, images, budget if images else 0, params,
        deadline=deadline, cancel=threading.Event(),
    )
    return Translated(request, auto if images else None, template_ids)
