"""Measure an elastic VLM against a LLaVA-style baseline that shares its vision tower and its LM.

The baseline is transformers' `LlavaForConditionalGeneration` whose vision tower, decoder and
lm_head ARE the MQT model's modules (no copy, so the two differ only in the connector and in how
many visual tokens reach the LLM) plus a 2-layer GELU MLP projector on every patch. Everything runs
in one process on one machine, with the configurations interleaved repeat by repeat, so a shared
machine's drift hits all of them alike, and the roofline rates are measured in the same run.

Per configuration and repeat:
- `generate` from pixels with a logits processor that stamps the time of every step: time to first
  token (vision + connector + prefill + generate's own setup) and decode seconds per token;
- the peak resident memory above the weights during that call (a sampling thread reads RSS);
- `generate` for one token with the visual tokens precomputed (the encode-once cache: MQT
  `visual_embeds`, LLaVA `mm_encoder_outputs`), i.e. the prefill alone;
- once per model: the encoder alone (tower + connector).
"""

from __future__ import annotations

import copy
import ctypes
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from mqt_vlm.analysis.roofline import get_clock
from mqt_vlm.budgets import check_budget
from mqt_vlm.errors import MQTError


# ---- memory -------------------------------------------------------------------------------------


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _release_free_memory() -> None:
    """Give glibc's free heap pages back to the OS, so RSS tracks live tensors again.

    Without it a call's "peak" would include whatever earlier calls left cached in the heap.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakRSS:
    """Peak resident memory inside a `with` block, above what was resident when it began.

    torch's CPU allocator has no peak counter (unlike CUDA), so a thread samples /proc every
    millisecond; torch ops release the GIL, so the sampler runs while they compute. Tensors that
    live for less than a millisecond can be missed; the KV cache and the activations cannot.
    """

    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s = interval_s
        self.start: int | None = None
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = _rss_bytes()
            if rss is not None and (self.peak is None or rss > self.peak):
                self.peak = rss
            time.sleep(self.interval_s)

    def __enter__(self) -> "PeakRSS":
        _release_free_memory()
        self.start = self.peak = _rss_bytes()
        if self.start is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        rss = _rss_bytes()
        if rss is not None and self.peak is not None:
            self.peak = max(self.peak, rss)

    @property
    def extra_bytes(self) -> int | None:
        if self.start is None or self.peak is None:
            return None
        return self.peak - self.start


def parameter_bytes(*modules: torch.nn.Module) -> int:
    """Bytes of the distinct parameters of `modules` (shared/tied tensors counted once)."""
    seen: dict[int, int] = {}
    for module in modules:
        for param in module.parameters():
            seen[param.data_ptr()] = param.numel() * param.element_size()
    return sum(seen.values())


# ---- the LLaVA-style baseline -------------------------------------------------------------------


def free_token_id(vocab_size: int, used: torch.Tensor) -> int:
    """An id inside the LM's vocabulary that the prompt does not use, to mark LLaVA's image slots
    (LLaVA embeds its image token before replacing it, so the id must exist in the table; ours
    lies past the vocabulary and is mapped away by our model)."""
    present = set(used.flatten().tolist())
    for token in range(vocab_size - 1, -1, -1):
        if token not in present:
            return token
    raise MQTError("Every vocabulary id occurs in the prompt; cannot place LLaVA's image tokens.")


def build_llava_baseline(model: Any, image_token_id: int, projector_hidden_act: str = "gelu") -> Any:
    """`LlavaForConditionalGeneration` around `model`'s own vision tower, decoder and lm_head.

    Built on the meta device and then given the shared modules, so no second tower or LM is ever
    allocated; only the projector (Linear(Cv, D), GELU, Linear(D, D), random) is new.
    """
    from transformers import LlavaConfig, LlavaForConditionalGeneration
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    from mqt_vlm.modeling.configuration import vision_patch_grid

    cfg = model.config
    rows, cols = vision_patch_grid(cfg.vision_config)
    config = LlavaConfig(
        vision_config=cfg.vision_config.to_dict(),
        text_config=cfg.text_config.to_dict(),
        image_token_id=image_token_id,
        projector_hidden_act=projector_hidden_act,
        vision_feature_layer=cfg.vision_feature_layer,
        vision_feature_select_strategy=cfg.vision_feature_select_strategy,
        image_seq_length=rows * cols,
        multimodal_projector_bias=True,
    )
    with torch.device("meta"):
        llava = LlavaForConditionalGeneration(config)
    dtype = next(model.language_model.parameters()).dtype
    llava.model.vision_tower = model.vision_tower
    llava.model.language_model = model.language_model.model
    llava.lm_head = model.language_model.lm_head
    llava.model.multi_modal_projector = LlavaMultiModalProjector(config).to(dtype)
    left = [name for name, tensor in [*llava.named_parameters(), *llava.named_buffers()] if tensor.is_meta]
    if left:
        raise MQTError(f"The LLaVA baseline still has unallocated tensors: {left[:5]}.")
    llava.generation_config = copy.deepcopy(model.generation_config)
    return llava.eval()


# ---- requests -----------------------------------------------------------------------------------


@dataclass
class Request:
    """Inputs of one generate call; `budget` is None for the baseline (it always uses N tokens)."""

    name: str
    visual_tokens: int
    text_tokens: int
    input_ids: torch.Tensor
    pixel_values: torch.Tensor
    budget: int | None = None
    cache: Any = None  # precomputed visual tokens for the encode-once measurement

    def generate_kwargs(self, cached: bool) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"input_ids": self.input_ids, "attention_mask": torch.ones_like(self.input_ids)}
        if self.budget is not None:
            kwargs["num_visual_tokens"] = self.budget
            kwargs["visual_embeds" if cached else "pixel_values"] = self.cache if cached else self.pixel_values
        elif cached:
            kwargs["mm_encoder_outputs"] = {"image": self.cache}
        else:
            kwargs["pixel_values"] = self.pixel_values
        return kwargs


def mqt_request(model: Any, processor: Any, image: Any, prompt: str, budget: int, batch: int = 1) -> Request:
    m = check_budget(budget, model.num_queries)
    inputs = processor(images=[image] * batch, text=[prompt] * batch, num_visual_tokens=m)
    ids = inputs["input_ids"]
    return Request(f"mqt-{m}", m, ids.shape[1] - m, ids, inputs["pixel_values"], budget=m)


def llava_request(processor: Any, image: Any, prompt: str, num_patches: int, image_token_id: int, batch: int = 1) -> Request:
    """The same prompt with `<image>` expanded to all N patches, marked by LLaVA's image id."""
    inputs = processor(images=[image] * batch, text=[prompt] * batch, num_visual_tokens=1)
    ids = inputs["input_ids"]
    rows = []
    for row in ids:
        at = int((row == processor.image_token_id).nonzero()[0])
        rows.append(torch.cat([row[:at], torch.full((num_patches,), image_token_id, dtype=row.dtype), row[at + 1 :]]))
    expanded = torch.stack(rows)
    return Request(f"llava-{num_patches}", num_patches, ids.shape[1] - 1, expanded, inputs["pixel_values"])


# ---- a shared machine ---------------------------------------------------------------------------


def _cpu_times() -> tuple[int, int] | None:
    try:
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values), idle


def others_busy(interval_s: float = 0.5) -> float | None:
    """Fraction of all cores busy over `interval_s` while this process sleeps: other work."""
    first = _cpu_times()
    time.sleep(interval_s)
    second = _cpu_times()
    if first is None or second is None or second[0] == first[0]:
        return None
    return 1.0 - (second[1] - first[1]) / (second[0] - first[0])


def wait_for_quiet(max_busy: float, timeout_s: float) -> float | None:
    """Sleep until other processes use at most `max_busy` of the cores (or `timeout_s` passes).

    On a 2-core machine shared with test runs, one busy core slows a 2-thread BLAS call far more
    than 2x (its threads wait for each other at every barrier); waiting costs less than a retake.
    Returns the last busy fraction seen, which the report keeps next to each sample.
    """
    deadline = time.monotonic() + timeout_s
    busy = others_busy()
    while busy is not None and busy > max_busy and time.monotonic() < deadline:
        busy = others_busy()
    return busy


# ---- timing -------------------------------------------------------------------------------------


class StepClock:
    """A logits processor that records when each generation step's logits are ready; it changes
    nothing. The first stamp closes the prefill, the gaps between the rest are decode steps."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.stamps: list[float] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.stamps.append(self.clock())
        return scores


@dataclass
class GenerateTiming:
    ttft_s: float
    decode_s_per_token: float | None
    peak_extra_bytes: int | None


def timed_generate(model: Any, new_tokens: int, *, clock: str = "wall", **inputs: Any) -> GenerateTiming:
    """Greedy `generate` of exactly `new_tokens` tokens (EOS suppressed until then), timed with
    `clock` ("wall" or "cpu", see `roofline.CLOCKS`)."""
    from transformers import LogitsProcessorList

    now = get_clock(clock)
    clock_ = StepClock(now)
    with torch.inference_mode(), PeakRSS() as memory:
        start = now()
        model.generate(
            **inputs,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            logits_processor=LogitsProcessorList([clock_]),
        )
    stamps = clock_.stamps
    if not stamps:
        raise MQTError("generate produced no tokens; cannot time it.")
    steps = len(stamps) - 1
    decode = (stamps[-1] - stamps[0]) / steps if steps > 0 else None
    return GenerateTiming(stamps[0] - start, decode, memory.extra_bytes)


def timed_call(fn: Callable[[], Any], clock: str = "wall") -> float:
    now = get_clock(clock)
    with torch.inference_mode():
        start = now()
        fn()
        return now() - start


@dataclass
class Samples:
    """Repeated measurements of one configuration; reports use the median."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, value: float | None) -> None:
        if value is not None:
            self.values.setdefault(key, []).append(float(value))

    def median(self, key: str) -> float | None:
        values = self.values.get(key)
        return statistics.median(values) if values else None

    def min(self, key: str) -> float | None:
        values = self.values.get(key)
        return min(values) if values else None


def measure_requests(
    models: dict[str, Any],
    requests: list[Request],
    encoders: dict[str, Callable[[], Any]],
    repeats: int,
    new_tokens: int,
    log: Callable[[str], None] = lambda _: None,
    quiet: float | None = None,
    quiet_timeout_s: float = 60.0,
    clock: str = "wall",
) -> dict[str, Samples]:
    """Interleaved measurements: each repeat runs every encoder, then every request (from pixels,
    then cached). `models[name]` is the model a request or encoder named `name` runs on: the
    request's name up to its first '-'. With `quiet`, each measurement first waits (up to
    `quiet_timeout_s`) until other processes use at most that fraction of the cores."""
    if repeats < 1 or new_tokens < 1:
        raise MQTError(f"repeats and new_tokens must be >= 1, got {repeats} and {new_tokens}.")
    samples: dict[str, Samples] = {name: Samples() for name in [*encoders, *(r.name for r in requests)]}

    def settle(name: str) -> None:
        if quiet is not None:
            samples[name].add("others_busy", wait_for_quiet(quiet, quiet_timeout_s))

    for repeat in range(repeats):
        for name, encode in encoders.items():
            settle(name)
            samples[name].add("encode_s", timed_call(encode, clock))
        for request in requests:
            model = models[request.name.split("-", 1)[0]]
            settle(request.name)
            full = timed_generate(model, new_tokens, clock=clock, **request.generate_kwargs(cached=False))
            cached = timed_generate(model, 1, clock=clock, **request.generate_kwargs(cached=True))
            got = samples[request.name]
            got.add("ttft_s", full.ttft_s)
            got.add("decode_s", full.decode_s_per_token)
            got.add("peak_extra_bytes", full.peak_extra_bytes)
            got.add("cached_ttft_s", cached.ttft_s)
            log(f"repeat {repeat + 1}/{repeats} {request.name}: ttft {full.ttft_s:.3f} s, cached {cached.ttft_s:.3f} s")
    return samples
