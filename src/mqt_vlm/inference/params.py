"""What one generation asks for (`GenerationRequest`, `SamplingParams`) and what it returns
(`GenerationResult`).

These are plain validated dataclasses so that the Python API, the CLI and the server all describe a
request the same way, and a bad value fails where it enters instead of deep inside `generate`.
The visual-token budget is explicit here: an int, or the string "auto" (`mqt_vlm.budgets.AUTO`),
a policy that produces ints (see `auto_budget.py`) and never a value the model sees.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

from mqt_vlm.budgets import AUTO
from mqt_vlm.errors import MQTError

MAX_STOP_STRINGS = 8
MAX_STOP_CHARS = 128
MIN_SAMPLING_TEMPERATURE = 1e-4


@dataclass(frozen=True)
class SamplingParams:
    """Decoding settings. `temperature == 0` (or below 1e-4) means greedy, which is how MQT-LLaVA is
    evaluated.

    Requests are batched only with requests whose `batch_key` is equal, because temperature, top-p
    and top-k act on the whole batch inside `generate`.
    """

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise MQTError(f"max_new_tokens must be an int >= 1, got {self.max_new_tokens!r}.")
        if not isinstance(self.temperature, (int, float)) or not math.isfinite(self.temperature) or not 0 <= self.temperature <= 2:
            raise MQTError(f"temperature must be in [0, 2] (0 = greedy), got {self.temperature!r}.")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise MQTError(f"top_p must be in (0, 1], got {self.top_p!r}.")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise MQTError(f"top_k must be an int >= 0 (0 = off), got {self.top_k!r}.")
        stops = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if len(stops) > MAX_STOP_STRINGS:
            raise MQTError(f"At most {MAX_STOP_STRINGS} stop strings are allowed, got {len(stops)}.")
        for s in stops:
            if not isinstance(s, str) or not s or len(s) > MAX_STOP_CHARS:
                raise MQTError(f"Stop strings must be non-empty strings of at most {MAX_STOP_CHARS} characters, got {s!r}.")
        object.__setattr__(self, "stop", stops)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or not 0 <= self.seed < 2**63):
            raise MQTError(f"seed must be an int in 0..2**63-1 or None, got {self.seed!r}.")

    @property
    def do_sample(self) -> bool:
        # below this, temperature scaling can overflow the logits; it is greedy in all but name anyway
        return self.temperature >= MIN_SAMPLING_TEMPERATURE

    def batch_key(self) -> tuple[object, ...]:
        """Requests with equal keys can share one `generate` call. Stop strings and max_new_tokens
        are per row (see `RowTracker`), so they are not part of the key."""
        if not self.do_sample:
            return ("greedy",)
        return ("sample", float(self.temperature), float(self.top_p), int(self.top_k), self.seed)


@dataclass
class GenerationRequest:
    """One prompt with one `<image>` placeholder per image, answered at an explicit budget (an int,
    or "auto" for `generate_auto`/`generate_one`; text-only requests have no budget to speak of: 0).

    `deadline` (a `time.monotonic()` value) and `cancel` let a caller stop this row mid-generation
    without stopping the rest of its batch; the server uses them for per-request time limits and
    for clients that disconnect.
    """

    prompt: str
    images: Sequence[Image.Image] = ()
    num_visual_tokens: int | Literal["auto"] = 0
    params: SamplingParams = field(default_factory=SamplingParams)
    deadline: float | None = None
    cancel: threading.Event | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt:
            raise MQTError("A generation request needs a non-empty prompt string.")
        self.images = list(self.images)
        for image in self.images:
            if not isinstance(image, Image.Image):
                raise MQTError(
                    f"Request images must be decoded PIL images (use mqt_vlm.processing.images.load_image), "
                    f"got {type(image).__name__}."
                )
        if self.images and self.num_visual_tokens != AUTO and (
                isinstance(self.num_visual_tokens, bool) or not isinstance(self.num_visual_tokens, int)):
            raise MQTError(f"num_visual_tokens must be an explicit int or \"auto\", got {self.num_visual_tokens!r}.")


@dataclass
class GenerationResult:
    """The answer and the accounting the CLI table and the OpenAI `usage` block need."""

    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" | "length" | "timeout" | "cancelled"
    num_visual_tokens: int
    prompt_tokens: int  # text tokens + visual tokens, i.e. what the LM prefilled
    visual_tokens: int  # num_visual_tokens x images
    logprobs: list[float]
    time_to_first_token_s: float
    total_time_s: float
    images_from_cache: int = 0
    budgets_tried: tuple[int, ...] = ()

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def mean_logprob(self) -> float:
        """Mean log-probability of the generated tokens under the model (before any sampling warper)."""
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else float("-inf")

    @property
    def first_token_prob(self) -> float:
        return math.exp(self.logprobs[0]) if self.logprobs else 0.0
