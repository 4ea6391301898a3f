"""The synthetic grid-VQA test split written by `mqt data synth` (see `mqt_vlm.data.synthetic`).

Layout: `DIR/test_questions.jsonl` (question_id, image relative to DIR, text, answer, question_type)
and `DIR/images/`. `--data-root` may be that folder itself or a folder holding it as `synthetic/`.

The prompt is the bare question: the synthetic training conversations carry no answer-format
suffix, so adding one at test time would ask the model something it was never trained on. Scoring is
exact match after lower-casing, stripping whitespace and a trailing period (answers are single
lower-case words: yes/no, digits, colours, shapes, "none"), overall and per question type, the
breakdown that shows which questions need more visual tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.benchmarks.base import (
    Benchmark,
    EvalItem,
    check_images,
    percent,
    read_jsonl,
    require_fields,
    require_file,
    unique_keys,
)

QUESTIONS_FILE = "test_questions.jsonl"
SYNTHETIC_MAX_NEW_TOKENS = 16  # answers are one word; a few spare tokens show rambling models


def locate_synthetic(root: Path) -> Path:
    """`root/synthetic` when it holds the split, else `root` (the folder `mqt data synth` wrote)."""
    nested = root / "synthetic"
    return nested if (nested / QUESTIONS_FILE).is_file() else root


def normalize_synthetic(text: str) -> str:
    text = text.strip().lower()
    return text[:-1].rstrip() if text.endswith(".") else text


def load_synthetic(root: Path) -> list[EvalItem]:
    path = require_file(root / QUESTIONS_FILE, "synthetic test split", "write one with `mqt data synth OUT`")
    records = read_jsonl(path)
    items = []
    for key, record in zip(unique_keys([r.get("question_id") for r in records]), records):
        require_fields(record, ("question_id", "image", "text", "answer", "question_type"), f"{path} question {key}")
        items.append(
            EvalItem(key=key, question_id=record["question_id"], text=record["text"], image=root / record["image"],
                     max_new_tokens=SYNTHETIC_MAX_NEW_TOKENS, subset=record["question_type"],
                     meta={"answer": str(record["answer"])})
        )
    check_images(items, "synthetic")
    return items


def score_synthetic(items: Sequence[EvalItem], predictions: Mapping[str, str]) -> dict:
    per_type: dict[str, list[int]] = {}
    for item in items:
        if item.key in predictions:
            hit = normalize_synthetic(predictions[item.key]) == normalize_synthetic(item.meta["answer"])
            per_type.setdefault(item.subset, []).append(int(hit))
    hits = [h for values in per_type.values() for h in values]
    if not hits:
        raise MQTError("Nothing to score: no synthetic question has a prediction.")
    return {"accuracy": sum(hits) / len(hits), "total": len(hits),
            "question_type": {name: sum(v) / len(v) for name, v in sorted(per_type.items())}}


def synthetic_rows(metrics: dict) -> dict[str, float]:
    rows = {"accuracy": percent(metrics["accuracy"])}
    for name, value in metrics["question_type"].items():
        rows[f"accuracy_{name}"] = percent(value)
    return rows


BENCHMARKS = (
    Benchmark("synthetic", "Synthetic", "synthetic", load_synthetic, score_synthetic, synthetic_rows,
              ("accuracy",), locate=locate_synthetic, source="exact match (mqt_vlm.data.synthetic answers)"),
)
