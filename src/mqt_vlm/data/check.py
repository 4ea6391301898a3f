"""Validate a LLaVA-format data file before a long run: `mqt data check`, and the trainer's start-up gate.

A day into a run is the wrong time to meet a missing image. `validate` finds every record that
cannot be trained on, with its id and the reason: bad JSON, a malformed record, missing or
unreadable images, zero or several `<image>`, empty or non-alternating turns, and samples that do
not fit `max_length` at the largest budget (the image does not fit, or no answer token survives
truncation). Conversations that are merely cut at `max_length` are fine, and counted.

Length is exact where it matters and cheap elsewhere: a UTF-8 byte count bounds the token count
(each token covers at least one byte, plus BOS and a prefix space per text piece), and only records
whose bound exceeds `max_length` are tokenized.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mqt_vlm.data.encode import OFFLINE_LLAMA_TOKENIZER, length_problem, tokenizer_source
from mqt_vlm.data.llava import Problem, Record, RecordError, conversation_turns, encode_record, read_records
from mqt_vlm.errors import MQTError
from mqt_vlm.processing.images import load_image
from mqt_vlm.processing.templates import IMAGE_TOKEN, TEMPLATES, render


@dataclass
class CheckReport:
    """What `validate` found. `valid` keeps file order; `truncated` lists usable records cut at max_length."""

    path: Path
    total: int
    valid: list[Record]
    problems: list[Problem]
    truncated: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self, show: int = 20) -> str:
        images = sum(record.image is not None for record in self.valid)
        lines = [
            f"data check: {self.path}",
            f"  records:   {self.total}",
            f"  valid:     {len(self.valid)} ({images} with an image, {len(self.valid) - images} text-only)",
            f"  invalid:   {len(self.problems)}",
        ]
        by_kind: dict[str, list[Problem]] = defaultdict(list)
        for problem in self.problems:
            by_kind[problem.kind].append(problem)
        for kind, items in sorted(by_kind.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            ids = ", ".join(p.id for p in items[:show]) + (f", ... (+{len(items) - show})" if len(items) > show else "")
            lines.append(f"    {kind} ({len(items)}): {ids}")
        if self.problems:
            lines.append("  first problems:")
            lines += [f"    [{p.id}] {p.kind}: {p.message}" for p in self.problems[:show]]
        if self.truncated:
            ids = ", ".join(self.truncated[:show]) + (", ..." if len(self.truncated) > show else "")
            lines.append(f"  truncated at max_length (usable, end cut off): {len(self.truncated)}: {ids}")
        return "\n".join(lines)


@dataclass(frozen=True)
class TokenizerView:
    """What encoding needs from a processor, for checks that have no model: a tokenizer and the image token."""

    tokenizer: Any
    image_token_id: int
    image_token: str = IMAGE_TOKEN


def tokenizer_view(name: str) -> TokenizerView:
    from transformers import AutoTokenizer

    from mqt_vlm.processing.processor import ensure_image_token

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(name))
    return TokenizerView(tokenizer, ensure_image_token(tokenizer))


def _byte_bound(record: Record, template: str, tokenizer: Any) -> int:
    text = "".join(segment.text for segment in render(conversation_turns(record, template), template, tokenizer))
    return len(text.encode("utf-8")) + 4


def _image_problem(record: Record, image_folder: Path | None, verify: bool) -> tuple[str, str] | None:
    if record.image is None:
        return None
    if image_folder is None:
        return ("missing_image", f"record has image {record.image!r} but no image folder was given")
    path = image_folder / record.image
    if not path.is_file():
        return ("missing_image", f"image {record.image} not found under {image_folder}")
    if verify:
        try:
            load_image(path, name=f"image {record.image}")
        except MQTError as exc:
            return ("unreadable_image", str(exc))
    return None


def validate(
    path: Path,
    image_folder: Path | None,
    processor: Any,
    template: str,
    max_length: int,
    max_budget: int,
    verify_images: bool = False,
    workers: int = 0,
) -> CheckReport:
    """Check every record of `path` for training with `template` at budgets up to `max_budget`.

    `processor` needs `.tokenizer`, `.image_token_id` and `.image_token` (an `MQTProcessor` or a
    `TokenizerView`). `verify_images` decodes every image (slow on big sets; existence is always checked).
    """
    records, problems = read_records(path)
    return validate_records(path, records, problems, image_folder, processor, template, max_length, max_budget, verify_images, workers)


def validate_records(
    path: Path,
    records: list[Record],
    problems: list[Problem],
    image_folder: Path | None,
    processor: Any,
    template: str,
    max_length: int,
    max_budget: int,
    verify_images: bool = False,
    workers: int = 0,
) -> CheckReport:
    """`validate` for records already read with `read_records` (the trainer reads them once)."""
    if template not in TEMPLATES:
        raise MQTError(f"Unknown template {template!r}; choose one of {TEMPLATES}.")
    if max_length < 1 or max_budget < 1:
        raise MQTError("max_length and max_budget must be positive.")
    problems = list(problems)
    total = len(records) + len(problems)
    folder = Path(image_folder) if image_folder is not None else None
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        image_results = list(pool.map(lambda r: _image_problem(r, folder, verify_images), records))
    valid: list[Record] = []
    truncated: list[str] = []
    for record, image_result in zip(records, image_results):
        try:
            conversation_turns(record, template)
            if image_result is not None:
                raise RecordError(*image_result)
            budget = max_budget if record.image is not None else 1
            if _byte_bound(record, template, processor.tokenizer) + budget > max_length:
                sample = encode_record(record, template, processor)
                reason = length_problem(sample, budget, max_length)
                if reason is not None:
                    raise RecordError("too_long", reason)
                if sample.length(budget) > max_length:
                    truncated.append(record.id)
        except RecordError as exc:
            problems.append(Problem(record.index, record.id, exc.kind, str(exc)))
            continue
        valid.append(record)
    problems.sort(key=lambda p: p.index)
    return CheckReport(Path(path), total, valid, problems, truncated)


def check(
    data: Path,
    image_folder: Path | None = None,
    max_length: int = 2048,
    template: str = "vicuna_v1",
    num_visual_tokens: int = 256,
    tokenizer: str = OFFLINE_LLAMA_TOKENIZER,
    verify_images: bool = True,
    workers: int = 0,
    show: int = 20,
) -> None:
    """Check a LLaVA-format data file (.json list or .jsonl) before training on it.

    Reports, with record ids: invalid JSON, malformed records, missing or unreadable images, zero or
    several <image> placeholders, empty or non-alternating turns, and samples that do not fit
    --max-length with --num-visual-tokens image tokens (the largest budget you will train with:
    256 for the paper's recipe). Use --template plain for stage-1 caption data. Token counts use
    --tokenizer (a folder, a hub id or a trained model directory; the default is an offline
    LLaMA-layout tokenizer that counts like Vicuna's). Exits with an error when any record is invalid.
    """
    report = validate(
        Path(data),
        image_folder,
        tokenizer_view(tokenizer),
        template,
        max_length,
        num_visual_tokens,
        verify_images=verify_images,
        workers=workers,
    )
    print(report.summary(show))
    if not report.ok:
        kinds = Counter(p.kind for p in report.problems)
        raise MQTError(
            f"{len(report.problems)} of {report.total} records are invalid ({dict(kinds)}); fix them, or "
            "train with --skip-bad-samples to skip them (the count is logged)."
        )
