"""Batched, resumable generation of one benchmark at its budgets into predictions .jsonl files.

File: `OUT/predictions/<benchmark>/m<budget>.jsonl`, one line per answered question:
{"key", "question_id", "budget", "prompt", "text", "text_tokens", "seconds"}. The budget is on every
line so a file read on its own (or concatenated with others) still says what it measured.

Why resumable: a full sweep is hours of GPU time per budget. Lines are appended and flushed after
every batch; a rerun reads the file, keeps every completed prediction and generates only the rest.
A line cut off by a crash is dropped. A stored prediction whose prompt differs from the one the
loader builds now (changed data, changed code) is refused rather than silently mixed in.

Why all budgets at once: a batch of questions is answered at every budget it still lacks before
the next batch starts, after one `generator.prepare(batch)` (where `ModelGenerator` encodes the
images at M), so each image goes through the vision tower once for the whole sweep. A line's
"seconds" is its share of the batch's generate call at that budget plus an equal share (per
question and budget) of that one preparation.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
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
    budgets: Sequence[int],
    generator: Generator,
    out: Path,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    progress: bool = True,
) -> dict[int, dict[str, dict[str, Any]]]:
    """Predictions for every item at every budget ({budget: {key: record}}), generating only those
    not already on disk.

    `max_new_tokens` overrides each benchmark's LLaVA default (for quick smoke runs).
    """
    from tqdm import tqdm

    if batch_size < 1:
        raise MQTError(f"batch_size must be >= 1, got {batch_size}.")
    budgets = list(dict.fromkeys(budgets))
    paths = {m: predictions_path(out, benchmark, m) for m in budgets}
    done = {m: read_predictions(paths[m], m) for m in budgets}
    for m in budgets:
        for item in items:
            stored = done[m].get(item.key)
            if stored is not None and stored.get("prompt") != item.text:
                raise MQTError(
                    f"{paths[m]} holds a prediction for {item.key!r} made from a different prompt; the data or the "
                    "loader changed since. Use a new --out, or delete that file to regenerate it."
                )
    todo = [item for item in items if any(item.key not in done[m] for m in budgets)]
    total = len(items) * len(budgets)
    bar = tqdm(total=total, initial=total - sum(item.key not in done[m] for item in items for m in budgets),
               desc=f"{benchmark} m={','.join(map(str, budgets))}", unit="q", disable=not progress, leave=False)
    prepare = getattr(generator, "prepare", None)
    with ExitStack() as stack:
        handles = {}
        for m in budgets:
            paths[m].parent.mkdir(parents=True, exist_ok=True)
            handles[m] = stack.enter_context(paths[m].open("a", encoding="utf-8"))
        for batch in _batches(todo, batch_size):
            start = time.perf_counter()
            if prepare is not None:
                prepare(batch)  # once for all the batch's budgets
            shared = time.perf_counter() - start
            asked = [(m, [item for item in batch if item.key not in done[m]]) for m in budgets]
            asked = [(m, questions) for m, questions in asked if questions]
            shared_per_question = shared / sum(len(questions) for _, questions in asked)
            for m, questions in asked:
                start = time.perf_counter()
                answers = generator(questions, m, max_new_tokens or questions[0].max_new_tokens)
                seconds = (time.perf_counter() - start) / len(questions) + shared_per_question
                if len(answers) != len(questions):
                    raise MQTError(f"The generator returned {len(answers)} answers for {len(questions)} questions.")
                for item, answer in zip(questions, answers):
                    record = {"key": item.key, "question_id": item.question_id, "budget": m, "prompt": item.text,
                              "text": answer.text, "text_tokens": answer.text_tokens, "seconds": seconds}
                    handles[m].write(json.dumps(record, ensure_ascii=False) + "\n")
                    done[m][item.key] = record
                handles[m].flush()
                bar.update(len(questions))
    bar.close()
    return {m: {item.key: done[m][item.key] for item in items} for m in budgets}
