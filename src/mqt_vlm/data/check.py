"""Validate a LLaVA-format data file before a long run: `mqt data check`, and the trainer's start-up gate.

A day into a run is the wrong time to meet a missing image. `validate` finds every record that
cannot be trained on, with its id and the reason: bad JSON or text that is not UTF-8, a malformed
record, image paths that leave the image folder, missing or unreadable images and images outside
the size rule (`processing.images.check_image_size`, read from the header), zero or several
`<image>`, empty or non-alternating turns, and samples that do not fit `max_length` at the largest
budget (the image does not fit, or no answer token survives truncation). Conversations that are
merely cut at `max_length` are fine, and counted. A record that makes a check fail in an unforeseen
way is reported like the others: one record must never hide the rest of the report.

Length is exact where it matters and cheap elsewhere: a UTF-8 byte count bounds the token count
(each token covers at least one byte, plus BOS and a prefix space per text piece), and only records
whose bound exceeds `max_length` are tokenized.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from mqt_vlm.data.encode import OFFLINE_LLAMA_TOKENIZER, length_problem, tokenizer_source
from mqt_vlm.data.llava import Problem, Record, RecordError, conversation_turns, encode_record, read_records, resolve_image
from mqt_vlm.errors import MQTError
from mqt_vlm.processing.images import check_image_size, load_image
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


def _image_header(path: Path, where: str) -> tuple[str, str] | None:
    """The size rule from the header alone (no decoding): cheap enough for every image of a run."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                size = image.size
    except Exception as exc:  # any failure to read a header is a property of that file
        return ("unreadable_image", f"{where} is not a readable image ({type(exc).__name__}: {exc})")
    try:
        check_image_size(*size, where)
    except MQTError as exc:
        return ("image_size", str(exc))
    return None


def _image_problem(record: Record, image_folder: Path | None, verify: bool, allow_absolute: bool = False) -> tuple[str, str] | None:
    if record.image is None:
        return None
    where = f"image {record.image}"
    try:
        path = resolve_image(image_folder, record.image, allow_absolute)
        if not path.is_file():
            return ("missing_image", f"{where} not found" + (f" under {image_folder}" if image_folder else ""))
        problem = _image_header(path, where)
        if problem is None and verify:
            load_image(path, name=where)
    except RecordError as exc:
        return (exc.kind, str(exc))
    except MQTError as exc:
        return ("unreadable_image", str(exc))
    except Exception as exc:  # a decoder bug on one file must not lose the report of the others
        return ("unreadable_image", f"{where}: {type(exc).__name__}: {exc}")
    return problem


def validate(
    path: Path,
    image_folder: Path | None,
    processor: Any,
    template: str,
    max_length: int,
    max_budget: int,
    verify_images: bool = False,
    workers: int = 0,
    allow_absolute_paths: bool = False,
) -> CheckReport:
    """Check every record of `path` for training with `template` at budgets up to `max_budget`.

    `processor` needs `.tokenizer`, `.image_token_id` and `.image_token` (an `MQTProcessor` or a
    `TokenizerView`). `verify_images` decodes every image (slow on big sets); where the path leads,
    existence and the size rule (from the header) are always checked.
    """
    records, problems = read_records(path)
    return validate_records(path, records, problems, image_folder, processor, template, max_length, max_budget,
                            verify_images, workers, allow_absolute_paths)


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
    allow_absolute_paths: bool = False,
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
        image_results = list(pool.map(lambda r: _image_problem(r, folder, verify_images, allow_absolute_paths), records))
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
        except Exception as exc:  # reported with its id, so that the other records are still checked
            problems.append(Problem(record.index, record.id, "unexpected_error", f"{type(exc).__name__}: {exc}"))
            continue
        valid.append(record)
    problems.sort(key=lambda p: p.index)
    return CheckReport(Path(path), total, valid, problems, truncated)


def _largest_budget(visual_tokens: int, old_name: int | None) -> int:
    """--visual-tokens, or its old name --num-visual-tokens (kept, hidden); a number, since no
    model is loaded to say what M is."""
    from mqt_vlm.budgets import parse_budget

    return int(parse_budget(visual_tokens if old_name is None else old_name, None, option="--visual-tokens"))


def check(
    data: Path,
    image_folder: Path | None = None,
    max_length: int = 2048,
    template: str = "vicuna_v1",
    visual_tokens: Annotated[int, typer.Option("--visual-tokens")] = 256,
    num_visual_tokens: Annotated[int | None, typer.Option("--num-visual-tokens", hidden=True)] = None,
    tokenizer: str = OFFLINE_LLAMA_TOKENIZER,
    verify_images: bool = True,
    workers: int = 0,
    show: int = 20,
    allow_absolute_paths: bool = False,
) -> None:
    """Check a LLaVA-format data file (.json list or .jsonl) before training on it.

    Reports, with record ids: invalid JSON or UTF-8, malformed records, image paths that leave
    --image-folder (through '..' or a symbolic link; absolute paths only with --allow-absolute-paths),
    missing or unreadable images, images too large or too narrow, zero or
    several <image> placeholders, empty or non-alternating turns, and samples that do not fit
    --max-length with --visual-tokens image tokens (the largest budget you will train with:
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
        _largest_budget(visual_tokens, num_visual_tokens),
        verify_images=verify_images,
        workers=workers,
        allow_absolute_paths=allow_absolute_paths,
    )
    print(report.summary(show))
    if not report.ok:
        kinds = Counter(p.kind for p in report.problems)
        raise MQTError(
            f"{len(report.problems)} of {report.total} records are invalid ({dict(kinds)}); fix them, or "
            "train with --skip-bad-samples to skip them (the count is logged)."
        )
