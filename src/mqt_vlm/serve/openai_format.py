"""Response bodies in OpenAI's chat-completion shapes, plus MQT's budget fields.

Extra fields ride alongside the standard ones (the official clients keep unknown fields): the
top-level `visual_tokens` is the budget that produced the answer and `visual_tokens_tried` lists
every budget an "auto" request went through; `usage.visual_tokens` counts the visual tokens in the
prompt (budget x images), which are included in `usage.prompt_tokens`.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from mqt_vlm.inference.params import GenerationResult

FINISH_REASONS = {"stop": "stop", "length": "length"}


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage(result: GenerationResult) -> dict[str, Any]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
        "visual_tokens": result.visual_tokens,
        "images_from_cache": result.images_from_cache,
    }


def _budget_fields(result: GenerationResult) -> dict[str, Any]:
    tried = list(result.budgets_tried) or [result.num_visual_tokens]
    return {"visual_tokens": result.num_visual_tokens, "visual_tokens_tried": tried}


def completion(result: GenerationResult, model: str, request_id: str, created: int) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": result.text},
            "finish_reason": FINISH_REASONS.get(result.finish_reason, "stop"),
            "logprobs": None,
        }],
        "usage": usage(result),
        "system_fingerprint": None,
        **_budget_fields(result),
    }


def chunk(model: str, request_id: str, created: int, delta: dict[str, Any] | None = None,
          finish_reason: str | None = None, result: GenerationResult | None = None,
          usage_only: bool = False) -> str:
    """One server-sent event carrying a `chat.completion.chunk`."""
    body: dict[str, Any] = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model,
                            "system_fingerprint": None}
    if usage_only and result is not None:
        body["choices"] = []
        body["usage"] = usage(result)
    else:
        body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason, "logprobs": None}]
    if result is not None:
        body.update(_budget_fields(result))
    return sse(body)


def sse(body: dict[str, Any] | str) -> str:
    data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return f"data: {data}\n\n"


def now() -> int:
    return int(time.time())
