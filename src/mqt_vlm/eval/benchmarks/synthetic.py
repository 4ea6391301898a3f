"""The synthetic grid-VQA test split written by `mqt data synth` (see `mqt_vlm.data.synthetic`).

Layout: `DIR/test_questions.jsonl` (question_id, image relative to DIR, text, answer, question_type)
and `DIR/images/`. `--data-root` may be that folder itself or a folder holding it as `synthetic/`.

The prompt is the bare question: the synthetic training conversations carry no answer-format
suffix, so adding one at test time would ask the model something it was never trained on. Scoring is
exact match after lower-casing, stripping whitespace and a trailing period (answers are single
lower-case words: yes/no, digits, colours, shapes, "none"), overall and per question type, the
breakdown that shows which questions need more visual tokens.

Describe-every-cell items (`test_describe.jsonl`, when present) are scored per cell: a cell counts
as right when the generated description names it with the true "colour shape" or "none"; a cell the
description omits counts as wrong. `describe_cell` is the mean over all cells of all images and is
kept out of `accuracy` (which stays the share of right answers to questions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.benchmarks.base import (
    Benchmark,
    EvalItem,
    check_images,
    first_n_per_subset,
    percent,
    read_jsonl,
    require_fields,
    require_file,
    unique_keys,
)

QUESTIONS_FILE = "test_questions.jsonl"
DESCRIBE_FILE = "test_describe.jsonl"
SYNTHETIC_MAX_NEW_TOKENS = 16  # answers are one word; a few spare tokens show rambling models
DESCRIBE_TOKENS_PER_CELL = 8  # a cell is "row r, column c: colour shape." (5-6 tokens with the repro tokenizer)


def locate_synthetic(root: Path) -> Path:
    """`root/synthetic` when it holds the split, else `root` (the folder `mqt data synth` wrote)."""
    nested = root / "synthetic"
    return nested if (nested / QUESTIONS_FILE).is_file() else root


def normalize_synthetic(text: str) -> str:
    text = text.strip().lower()
    return text[:-1].rstrip() if text.endswith(".") else text


def describe_cells(description: str) -> dict[tuple[int, int], str]:
    """The cells a ground-truth description names (its grid is what it names)."""
    from mqt_vlm.data.synthetic_scene import parse_description

    return parse_description(description, grid=10**6)


def load_synthetic(root: Path) -> list[EvalItem]:
    path = require_file(root / QUESTIONS_FILE, "synthetic test split", "write one with `mqt data synth OUT`")
    records = read_jsonl(path)
    if (root / DESCRIBE_FILE).is_file():
        records += read_jsonl(root / DESCRIBE_FILE)
    items = []
    for key, record in zip(unique_keys([r.get("question_id") for r in records]), records):
        require_fields(record, ("question_id", "image", "text", "answer", "question_type"), f"{path} question {key}")
        describe = record["question_type"] == "describe"
        cells = len(describe_cells(str(record["answer"]))) if describe else 0
        if describe and not cells:
            raise MQTError(f"{root / DESCRIBE_FILE}: {key} has no 'row R, column C: ...' cells in its answer.")
        items.append(
            EvalItem(key=key, question_id=record["question_id"], text=record["text"], image=root / record["image"],
                     max_new_tokens=cells * DESCRIBE_TOKENS_PER_CELL if describe else SYNTHETIC_MAX_NEW_TOKENS,
                     subset=record["question_type"],
                     meta={"answer": str(record["answer"])})
        )
    check_images(items, "synthetic")
    return items


def score_synthetic(items: Sequence[EvalItem], predictions: Mapping[str, str]) -> dict:
    from mqt_vlm.data.synthetic_scene import parse_description

    per_type: dict[str, list[int]] = {}
    cells: list[int] = []
    for item in items:
        if item.key in predictions and item.subset == "describe":
            truth = describe_cells(item.meta["answer"])
            grid = max(max(key) for key in truth)
            said = parse_description(predictions[item.key].lower(), grid)
            cells += [int(said.get(key) == value) for key, value in truth.items()]
        elif item.key in predictions:
            hit = normalize_synthetic(predictions[item.key]) == normalize_synthetic(item.meta["answer"])
            per_type.setdefault(item.subset, []).append(int(hit))
    hits = [h for values in per_type.values() for h in values]
    if not hits and not cells:
        raise MQTError("Nothing to score: no synthetic question has a prediction.")
    metrics: dict = {"total": len(hits), "question_type": {name: sum(v) / len(v) for name, v in sorted(per_type.items())}}
    if hits:
        metrics["accuracy"] = sum(hits) / len(hits)
    if cells:
        metrics["describe_cell"] = sum(cells) / len(cells)
        metrics["describe_cells"] = len(cells)
    return metrics


def synthetic_rows(metrics: dict) -> dict[str, float]:
    rows = {"accuracy": percent(metrics["accuracy"])} if "accuracy" in metrics else {}
    for name, value in metrics["question_type"].items():
        rows[f"accuracy_{name}"] = percent(value)
    if "describe_cell" in metrics:
        rows["describe_cell"] = percent(metrics["describe_cell"])
    return rows


BENCHMARKS = (
    Benchmark("synthetic", "Synthetic", "synthetic", load_synthetic, score_synthetic, synthetic_rows,
              ("accuracy",), limit=first_n_per_subset, locate=locate_synthetic,
              source="exact match (mqt_vlm.data.synthetic answers); descriptions per cell"),
)
