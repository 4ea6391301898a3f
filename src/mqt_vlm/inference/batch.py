"""Batched generation where every sample carries its own visual-token budget.

`generate_batch` is the one generation path: the CLI, chat, the demo (text and web), `mqt eval`,
the lmms-eval adapter and "auto" call it, and the server's worker calls its two halves
(`prepare_request`, `generate_prepared`) so it can prepare each request alone and retry rows:
prompts are tokenized with each image expanded to its own m image tokens, left-padded (so every
row's next token sits in the last column), images go through the encode-once cache, and one
`model.generate` call answers the batch with `visual_embeds` + per-image budgets. Greedy results
equal running each sample alone (tested): left padding plus position ids derived from the
attention mask make padding invisible to the LM.

Requests with different sampling settings cannot share a `generate` call (temperature and top-p
apply to the whole batch), so they are grouped by `SamplingParams.batch_key` and run group by group.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessorList, StoppingCriteriaList
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from mqt_vlm.budgets import AUTO, check_budget
from mqt_vlm.errors import MQTError
from mqt_vlm.inference.cache import VisualTokenCache
from mqt_vlm.inference.encoding import encode_images
from mqt_vlm.inference.params import GenerationRequest, GenerationResult, SamplingParams
from mqt_vlm.inference.stopping import LogprobRecorder, RowSpec, RowTracker
from mqt_vlm.inference.streaming import TextStreamer


@dataclass
class PreparedRequest:
    """A request tokenized at its budget: what the batch is built from."""

    request: GenerationRequest
    input_ids: list[int]
    budgets: list[int]  # one per image (all equal: a request has one budget)


def expand_image_tokens(template_ids: Sequence[int], image_token_id: int, budget: int) -> list[int]:
    """Prompt ids with each image token repeated `budget` times: `processor.tokenize_prompt(prompt, m)`
    equals this applied to `tokenize_prompt(prompt, 1)` (text never tokenizes to the image token)."""
    ids: list[int] = []
    for token in template_ids:
        if token == image_token_id:
            ids.extend([token] * budget)
        else:
            ids.append(token)
    return ids


def prepare_request(processor: Any, request: GenerationRequest, template_ids: Sequence[int] | None = None) -> PreparedRequest:
    """Validate the budget and placeholders, and tokenize with each `<image>` expanded to m tokens.

    `template_ids`: the prompt already tokenized with one image token per image (the server does
    that off the model's thread); then only the image tokens are repeated.
    """
    placeholders = request.prompt.count(processor.image_token)
    if placeholders != len(request.images):
        raise MQTError(
            f"The prompt has {placeholders} '{processor.image_token}' placeholders but {len(request.images)} images "
            "were given; put one placeholder per image."
        )
    budgets: list[int] = []
    if request.images:
        if request.num_visual_tokens == AUTO:
            raise MQTError('A request with num_visual_tokens="auto" goes through generate_auto (or generate_one).')
        m = check_budget(request.num_visual_tokens, processor.num_queries)
        budgets = [m] * len(request.images)
    if template_ids is not None:
        ids = expand_image_tokens(template_ids, processor.image_token_id, budgets[0] if budgets else 1)
    else:
        ids = processor.tokenize_prompt(request.prompt, budgets)
    return PreparedRequest(request, ids, budgets)


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """EOS ids from the model's generation config and the tokenizer (chat models often have both)."""
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if configured is not None:
        ids.update([configured] if isinstance(configured, int) else configured)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return sorted(ids)


def _warpers(params: SamplingParams) -> list[Any]:
    """Sampling warpers, built here rather than by `generate` so they run after `LogprobRecorder`."""
    if not params.do_sample:
        return []
    warpers: list[Any] = []
    if params.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(float(params.temperature)))
    if params.top_k > 0:
        warpers.append(TopKLogitsWarper(params.top_k))
    if params.top_p < 1.0:
        warpers.append(TopPLogitsWarper(float(params.top_p)))
    return warpers


class _Reindexed:
    """Maps rows of a sampling group back to rows of the caller's batch."""

    def __init__(self, streamer: TextStreamer, rows: Sequence[int]) -> None:
        self.streamer, self.rows = streamer, list(rows)

    def on_text(self, row: int, delta: str) -> None:
        self.streamer.on_text(self.rows[row], delta)

    def on_finish(self, row: int, result: GenerationResult) -> None:
        self.streamer.on_finish(self.rows[row], result)


def generate_prepared(
    model: Any,
    processor: Any,
    prepared: Sequence[PreparedRequest],
    cache: VisualTokenCache | None = None,
    streamer: TextStreamer | None = None,
) -> list[GenerationResult]:
    """One `model.generate` call for requests that share a `batch_key`."""
    if not prepared:
        return []
    params = prepared[0].request.params
    if any(p.request.params.batch_key() != params.batch_key() for p in prepared):
        raise MQTError("generate_prepared needs requests with equal sampling settings; use generate_batch.")
    start = time.monotonic()
    tokenizer = processor.tokenizer
    batch = processor.pad([p.input_ids for p in prepared], padding_side="left")
    kwargs: dict[str, Any] = {}
    images = [image for p in prepared for image in p.request.images]
    cached_per_row = [0] * len(prepared)
    if images:
        encoded = encode_images(model, processor, images, cache)
        kwargs["visual_embeds"] = encoded.visual  # [I, M, D]
        kwargs["num_visual_tokens"] = [m for p in prepared for m in p.budgets]
        flags = iter(encoded.from_cache)
        cached_per_row = [sum(next(flags) for _ in p.request.images) for p in prepared]
    recorder = LogprobRecorder()
    eos = eos_token_ids(model, tokenizer)
    rows = [
        RowSpec(p.request.params.max_new_tokens, p.request.params.stop, p.request.deadline, p.request.cancel,
                stream=streamer is not None)
        for p in prepared
    ]
    tracker = RowTracker(tokenizer, rows, eos, recorder, streamer)
    sampling: dict[str, Any] = {"do_sample": params.do_sample}
    if params.do_sample:  # neutral values so neither the model's defaults nor HF's top_k=50 apply
        sampling.update(temperature=1.0, top_p=1.0, top_k=0)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    device = model.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
        if params.seed is not None:
            torch.manual_seed(params.seed)
        model.generate(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            max_new_tokens=max(r.max_new_tokens for r in rows),
            logits_processor=LogitsProcessorList([recorder, *_warpers(params)]),
            stopping_criteria=StoppingCriteriaList([tracker]),
            eos_token_id=eos,
            pad_token_id=pad_id,
            **sampling,
            **kwargs,
        )
    results = []
    for row, p in enumerate(prepared):
        text, reason = tracker.finish_row(row)
        state = tracker.state[row]
        first = state.first_token_time if state.first_token_time is not None else time.monotonic()
        finished = state.finish_time if state.finish_time is not None else time.monotonic()
        result = GenerationResult(
            text=text,
            token_ids=list(state.tokens),
            finish_reason=reason,
            num_visual_tokens=p.budgets[0] if p.budgets else 0,
            prompt_tokens=len(p.input_ids),
            visual_tokens=sum(p.budgets),
            logprobs=list(state.logprobs),
            time_to_first_token_s=first - start,
            total_time_s=finished - start,
            images_from_cache=cached_per_row[row],
        )
        if streamer is not None:
            streamer.on_finish(row, result)
        results.append(result)
    return results


def generate_batch(
    model: Any,
    processor: Any,
    requests: Sequence[GenerationRequest],
    cache: VisualTokenCache | None = None,
    streamer: TextStreamer | None = None,
) -> list[GenerationResult]:
    """Answer every request (each with its own budget); results come back in request order."""
    prepared = [prepare_request(processor, r) for r in requests]
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault(p.request.params.batch_key(), []).append(i)
    results: list[GenerationResult | None] = [None] * len(prepared)
    for rows in groups.values():
        sub_streamer = _Reindexed(streamer, rows) if streamer is not None else None
        for i, result in zip(rows, generate_prepared(model, processor, [prepared[i] for i in rows], cache, sub_streamer)):
            results[i] = result
    return [r for r in results if r is not None]
