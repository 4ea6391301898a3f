"""The request body of `POST /v1/chat/completions`, as strict pydantic models.

Field names and shapes follow OpenAI's chat completions API, so the official clients work
unchanged; the one addition is `visual_tokens` (an int in 1..M, "M"/"max" or "auto": the
vocabulary of `mqt_vlm.budgets`), which clients send with
`extra_body`. Types are strict where a lax parse would hide a client bug (`"16"` or `true` is not a
budget). Unknown fields are ignored, as OpenAI-compatible servers usually do, but known features we
do not implement (n > 1, logprobs, tools) are refused rather than silently dropped.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Model):
    type: Literal["text"]
    text: StrictStr


class ImageURL(_Model):
    url: StrictStr
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Model):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(_Model):
    role: Literal["system", "developer", "user", "assistant"]
    content: StrictStr | list[ContentPart] | None = None
    name: StrictStr | None = None


class StreamOptions(_Model):
    include_usage: StrictBool = False


Number = StrictInt | StrictFloat


class ChatCompletionRequest(_Model):
    model: StrictStr | None = None
    messages: list[Message] = Field(min_length=1)
    max_tokens: StrictInt | None = None
    max_completion_tokens: StrictInt | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    top_k: StrictInt | None = None  # not OpenAI, but common in compatible servers
    stop: StrictStr | list[StrictStr] | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    seed: StrictInt | None = None
    n: StrictInt | None = None
    logprobs: StrictBool | None = None
    tools: list[Any] | None = None
    visual_tokens: StrictInt | Literal["auto", "max", "M"] | None = None
