"""A validated `ChatCompletionRequest` -> a `GenerationRequest` the worker can run.

All checks that depend only on the request happen here, before it is queued, so a bad request
costs the server a few microseconds and never reaches the model: model name, unsupported options,
max_tokens, the budget (an int in 1..M or "auto"), message roles, image count, and each image
(decoded off the event loop with the pixel limit). Tokenization waits for the worker thread,
which owns the tokenizer (fast tokenizers are not safe to share across threads).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from mqt_vlm.errors import MQTError, check_budget
from mqt_vlm.inference.auto_budget import BudgetPolicy
from mqt_vlm.inference.params import GenerationRequest, SamplingParams
from mqt_vlm.inference.prompting import build_prompt, user_text
from mqt_vlm.serve.config import ServeConfig
from mqt_vlm.serve.errors import APIError
from mqt_vlm.serve.images import decode_image, image_bytes
from mqt_vlm.serve.schemas import ChatCompletionRequest, ImagePart, Message


@dataclass
class Translated:
    request: GenerationRequest
    auto: bool


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
                   policy: BudgetPolicy) -> tuple[int, bool]:
    """(first budget, is auto). The budget is never guessed: body, then server default, then model default."""
    value: Any = body.visual_tokens
    if value is None:
        value = config.default_visual_tokens if config.default_visual_tokens is not None else default
    if value == "auto":
        return policy.first_budget(num_queries), True
    try:
        return check_budget(value, num_queries), False
    except MQTError as exc:
        raise APIError(400, f"visual_tokens must be an int in 1..{num_queries} or \"auto\": {exc}",
                       code="invalid_visual_tokens", param="visual_tokens") from None


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


async def translate(body: ChatCompletionRequest, config: ServeConfig, processor: Any, default_budget: int,
                    policy: BudgetPolicy) -> Translated:
    """Validate and convert; raises APIError (4xx) for anything the client must fix."""
    deadline = time.monotonic() + config.request_timeout_s  # the clock starts when the request arrives
    _check_options(body, config)
    params = sampling_params(body, config)
    budget, auto = resolve_budget(body, config, processor.num_queries, default_budget, policy)
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    urls: list[tuple[str, str]] = []
    for i, message in enumerate(body.messages):
        parts, message_urls = _message_parts(message, i)
        urls += message_urls
        if len(urls) > config.max_images_per_request:
            raise APIError(400, f"At most {config.max_images_per_request} images per request are allowed.",
                           code="too_many_images", param="messages")
        try:
            text = user_text(parts)
        except MQTError as exc:
            raise APIError(400, str(exc), code="invalid_value", param=f"messages.{i}.content") from None
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
    images = []
    for url, param in urls:
        data = await image_bytes(url, config, param)
        images.append(await run_in_threadpool(decode_image, data, config, param))
    request = GenerationRequest(
        prompt, images, budget if images else 0, params,
        deadline=deadline, cancel=threading.Event(),
    )
    return Translated(request, auto and bool(images))
