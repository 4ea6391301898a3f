"""Batched, resumable generation of one benchmark at one budget into a predictions .jsonl.

File: `OUT/predictions/<benchmark>/m<budget>.jsonl`, one line per answered question:
{"key", "question_id", "budget", "prompt", "text", "text_tokens", "seconds"}. The budget is on every
line so a file read on its own (or concatenated with others) still says what it measured.

Why resumable: a full sweep is hours of GPU time per budget. Lines are appended and flushed after
every batch; a rerun reads the file, keeps every completed prediction and generates only the rest.
A line cut off by a crash is dropped. A stored prediction whose prompt differs from the one the
loader builds now (changed data, changed code) is refused rather than silently mixed in.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.benchmarks.base import EvalItem
from mqt_vlm.eval.generator import Generator

logger = logging.getLogger(__name__)


def predictions_path(out: Path, benchmark: str, budget: int) -> Path:
    return out / "predictions" / benchmark / f"m{budget:03d}.jsonl"


def read_predictions(path: Path, budget: int | None = None) -> dict[str, dict[str, Any]]:
    """Completed predictions by key. A truncated last line (an interrupted write) is removed."""
    if not path.is_file():
        return {}
    raw = path.read_text(encoding="utf-8")
    lines = raw.split("\n")
    records: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # the unfinished tail of an interrupted run
                logger.warning("%s: dropping an incomplete last line.", path)
                path.write_text(raw[: len(raw) - len(line)], encoding="utf-8")
                break
            raise MQTError(f"{path}:{number} is not valid JSON; delete the file to regenerate it.") from None
        if budget is not None and record.get("budget") != budget:
            raise MQTError(f"{path}:{number} was generated at budget {record.get('budget')}, not {budget}.")
        records[str(record["key"])] = record
    if records and raw and not raw.endswith("\n") and path.read_text(encoding="utf-8") == raw:
        with path.open("a", encoding="utf-8") as handle:  # a hand-edited file: keep appends on their own lines
            handle.write("\n")
    return records


def _batches(items: Sequence[EvalItem], batch_size: int) -> Iterator[list[EvalItem]]:
    """Consecutive batches of items that share max_new_tokens (one generate call each)."""
    batch: list[EvalItem] = []
    for item in items:
        if batch and (len(batch) == batch_size or item.max_new_tokens != batch[0].max_new_tokens):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def run_predictions(
    benchmark: str,
    items: Sequence[EvalItem],
    budget: int,
    generator: Generator,
    out: Path,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Predictions for every item at `budget`, generating only those not already on disk.

    `max_new_tokens` overrides each benchmark's LLaVA default (for quick smoke runs).
    """
    from tqdm import tqdm

    if batch_size < 1:
        raise MQTError(f"batch_size must be >= 1, got {batch_size}.")
    path = predictions_path(out, benchmark, budget)
    done = read_predictions(path, budget)
    for item in items:
        stored = done.get(item.key)
        if stored is not None and stored.get("prompt") != item.text:
            raise MQTError(
                f"{path} holds a prediction for {item.key!r} made from a different prompt; the data or the "
                "loader changed since. Use a new --out, or delete that file to regenerate it."
            )
    todo = [item for item in items if item.key not in done]
    path.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=f"{benchmark} m={budget}",
               unit="q", disable=not progress, leave=False)
    with path.open("a", encoding="utf-8") as handle:
        for batch in _batches(todo, batch_size):
            start = time.perf_counter()
            answers = generator(batch, budget, max_new_tokens or batch[0].max_new_tokens)
            seconds = (time.perf_counter() - start) / len(batch)
            if len(answers) != len(batch):
                raise MQTError(f"The generator returned {len(answers)} answers for {len(batch)} questions.")
            for item, answer in zip(batch, answers):
                record = {"key": item.key, "question_id": item.question_id, "budget": budget, "prompt": item.text,
                          "text": answer.text, "text_tokens": answer.text_tokens, "seconds": seconds}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                done[item.key] = record
            handle.flush()
            bar.update(len(batch))
    bar.close()
    return {item.key: done[item.key] for item in items}
