"""`ServeConfig`: every limit and knob of the server in one validated dataclass.

Each user-controlled size has a bound here (body, image pixels, sides and bytes, images per
request, prompt bytes and tokens, completion tokens, time per request, queue length, how long a
connection may take to send its request), because a server that can be made to allocate or compute
without bound by one request is a server anyone can take down. docs/serving.md ("Limits") lists
them with their `mqt serve` flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mqt_vlm.budgets import parse_budget
from mqt_vlm.errors import MQTError
from mqt_vlm.inference.auto_budget import AutoBudgetConfig
from mqt_vlm.processing.images import DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_SIDE

MiB = 1024 * 1024
PROMPT_BYTES_PER_TOKEN = 16  # the longest LLaMA token is 16 characters: a prompt over 16 x the token limit never fits


def _positive(name: str, value: object, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise MQTError(f"ServeConfig.{name} must be a number {'>= 0' if allow_zero else '> 0'}, got {value!r}.")


@dataclass(frozen=True)
class ServeConfig:
    """Server settings. Defaults suit one model on one machine serving trusted-but-careless clients."""

    model_name: str = "mqt"
    max_body_bytes: int = 16 * MiB
    max_image_bytes: int = 16 * MiB  # for images fetched by URL or read from disk (when allowed)
    max_image_pixels: int = 16_000_000
    max_image_side: int = DEFAULT_MAX_SIDE  # images are padded to a long-side square before resizing
    max_image_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO
    max_images_per_request: int = 4
    max_messages: int = 64
    max_tokens_limit: int = 1024  # the largest max_tokens a request may ask for
    default_max_tokens: int = 256
    max_prompt_tokens: int = 4096  # text + visual tokens
    max_prompt_bytes: int | None = None  # UTF-8 bytes of message text, checked before tokenizing; None: 16 x tokens
    request_timeout_s: float = 120.0
    max_queue: int = 256
    max_batch_size: int = 16
    batch_wait_ms: float = 5.0
    max_padding: float = 0.3  # split a batch where its prefill would be more padding than this (1.0: never)
    cache_bytes: int = 512 * MiB
    allow_remote_images: bool = False  # http(s) URLs and local paths; off: base64 data URLs only
    remote_timeout_s: float = 10.0  # the whole fetch of one image, not each read
    header_timeout_s: float = 10.0  # a connection must send its request line and headers within this
    body_timeout_s: float = 30.0  # ... and then its whole body within this
    api_docs: bool = False  # serve /docs, /redoc and /openapi.json
    default_visual_tokens: int | Literal["auto", "max"] | None = None  # None: the model's default budget
    template: str | None = None  # None: the processor's default template
    auto: AutoBudgetConfig = field(default_factory=AutoBudgetConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.model_name, str) or not self.model_name:
            raise MQTError("ServeConfig.model_name must be a non-empty string.")
        for name in ("max_body_bytes", "max_image_bytes", "max_image_pixels", "max_images_per_request",
                     "max_messages", "max_tokens_limit", "default_max_tokens", "max_prompt_tokens", "max_queue",
                     "max_batch_size", "max_image_side"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise MQTError(f"ServeConfig.{name} must be an int >= 1, got {value!r}.")
        _positive("request_timeout_s", self.request_timeout_s)
        _positive("remote_timeout_s", self.remote_timeout_s)
        _positive("header_timeout_s", self.header_timeout_s)
        _positive("body_timeout_s", self.body_timeout_s)
        if (isinstance(self.max_image_aspect_ratio, bool) or not isinstance(self.max_image_aspect_ratio, (int, float))
                or not self.max_image_aspect_ratio >= 1):
            raise MQTError(f"ServeConfig.max_image_aspect_ratio must be a number >= 1, "
                           f"got {self.max_image_aspect_ratio!r}.")
        if self.max_prompt_bytes is not None and (isinstance(self.max_prompt_bytes, bool)
                                                  or not isinstance(self.max_prompt_bytes, int)
                                                  or self.max_prompt_bytes < 1):
            raise MQTError(f"ServeConfig.max_prompt_bytes must be an int >= 1 or None, got {self.max_prompt_bytes!r}.")
        _positive("batch_wait_ms", self.batch_wait_ms, allow_zero=True)
        _positive("cache_bytes", self.cache_bytes, allow_zero=True)
        if not isinstance(self.max_padding, (int, float)) or not 0.0 <= self.max_padding <= 1.0:
            raise MQTError(f"ServeConfig.max_padding must be in [0, 1], got {self.max_padding!r}.")
        if self.default_max_tokens > self.max_tokens_limit:
            raise MQTError(f"default_max_tokens ({self.default_max_tokens}) exceeds max_tokens_limit ({self.max_tokens_limit}).")
        if self.default_visual_tokens is not None:  # checked against M when the app starts
            object.__setattr__(self, "default_visual_tokens", parse_budget(
                self.default_visual_tokens, None, allow_auto=True, option="ServeConfig.default_visual_tokens"))
        if not isinstance(self.auto, AutoBudgetConfig):
            raise MQTError("ServeConfig.auto must be an AutoBudgetConfig.")

    @property
    def prompt_bytes_limit(self) -> int:
        """`max_prompt_bytes`, or 16 bytes per allowed prompt token when unset."""
        return self.max_prompt_bytes or PROMPT_BYTES_PER_TOKEN * self.max_prompt_tokens
