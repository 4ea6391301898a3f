"""Multiple-choice benchmarks: ScienceQA-IMG, MMBench (EN and CN) and SEED-Bench (image).

Sources: LLaVA scripts/v1_5/eval/{sqa,mmbench,mmbench_cn,seed}.sh; llava/eval/model_vqa_science.py
(the question is the first human turn without `<image>`, plus the option-letter suffix; 1024 new
tokens), llava/eval/model_vqa_mmbench.py (hint, question and "A. option" lines built from the TSV,
options read until the first empty one, the CN suffix for MMBench-CN; 1024 new tokens) and
scripts/convert_seed_for_submission.py (a prediction is right when it *equals* the answer letter).

ScienceQA runs the questions with an image only: SQA-IMG, the number the papers report, is the
accuracy on those, and text-only questions do not change it.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.benchmarks.base import (
    LONG_ANSWER_MAX_NEW_TOKENS,
    MULTIPLE_CHOICE_SUFFIX,
    MULTIPLE_CHOICE_SUFFIX_CN,
    SHORT_ANSWER_MAX_NEW_TOKENS,
    Benchmark,
    EmbeddedImage,
    EvalItem,
    check_images,
    percent,
    read_json,
    read_jsonl,
    require_fields,
    require_file,
    unique_keys,
    with_suffix,
)
from mqt_vlm.eval.scorers import mmbench_circular_accuracy, scienceqa_accuracy, write_mmbench_submission

MMBENCH_OPTIONS = ("A", "B", "C", "D")
MMBENCH_EN_FILE = "mmbench_dev_20230712.tsv"
MMBENCH_CN_FILE = "mmbench_dev_cn_20231003.tsv"


# ---- ScienceQA-IMG ------------------------------------------------------------------------------


def load_scienceqa(root: Path) -> list[EvalItem]:
    questions_path = require_file(root / "llava_test_CQM-A.json", "ScienceQA question file", "from LLaVA's eval.zip")
    problems = read_json(require_file(root / "problems.json", "ScienceQA problems.json", "the ScienceQA repository"))
    questions = read_json(questions_path)
    if not isinstance(questions, list):
        raise MQTError(f"{questions_path} should be a JSON list of LLaVA conversations.")
    items = []
    for i, record in enumerate(questions):
        require_fields(record, ("id", "conversations"), f"{questions_path} entry {i}")
        if "image" not in record:
            continue  # text-only: not part of SQA-IMG
        problem = problems.get(str(record["id"]))
        if problem is None:
            raise MQTError(f"ScienceQA question {record['id']!r} is not in problems.json.")
        text = record["conversations"][0]["value"].replace("<image>", "").strip()
        items.append(
            EvalItem(
                key=str(record["id"]),
                question_id=record["id"],
                text=with_suffix(text, MULTIPLE_CHOICE_SUFFIX),
                image=root / "images" / "test" / record["image"],
                max_new_tokens=LONG_ANSWER_MAX_NEW_TOKENS,
                meta={"answer": int(problem["answer"]), "num_choices": len(problem["choices"])},
            )
        )
    if not items:
        raise MQTError(f"{questions_path} has no question with an image.")
    check_images(items, "ScienceQA")
    return items


def score_scienceqa(items: Sequence[EvalItem], predictions: Mapping[str, str]) -> dict:
    records = [
        {"prediction": predictions[i.key], "answer": i.meta["answer"], "num_choices": i.meta["num_choices"],
         "has_image": True}
        for i in items if i.key in predictions
    ]
    return scienceqa_accuracy(records)


def scienceqa_rows(metrics: dict) -> dict[str, float]:
    return {"img_accuracy": percent(metrics["img_accuracy"])}


# ---- MMBench ------------------------------------------------------------------------------------


def is_none(value: object) -> bool:
    """`is_none` of model_vqa_mmbench.py, for cells read as text (pandas' NaN is an empty cell here)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return isinstance(value, str) and value.strip().lower() in ("", "nan", "none")


@contextmanager
def _large_csv_fields() -> Iterator[None]:
    """MMBench cells hold whole base64 images, beyond csv's default 128 KiB field limit."""
    old = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        yield
    finally:
        csv.field_size_limit(old)


def read_mmbench_tsv(path: Path) -> list[dict[str, str]]:
    with _large_csv_fields(), path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, dialect="excel-tab"))
    if not rows:
        raise MQTError(f"{path} holds no questions.")
    require_fields(rows[0], ("index", "question", "A", "B", "image"), f"{path} header")
    return rows


def mmbench_prompt(row: Mapping[str, Any], suffix: str) -> str:
    """The question text model_vqa_mmbench.py builds for one TSV row."""
    question = str(row["question"])
    if not is_none(row.get("hint")):
        question = f"{row['hint']}\n{question}"
    for letter in MMBENCH_OPTIONS:
        if is_none(row.get(letter)):
            break
        question = f"{question}\n{letter}. {row[letter]}"
    return f"{question}\n{suffix}"


def _load_mmbench(root: Path, file_name: str, suffix: str) -> list[EvalItem]:
    path = require_file(root / file_name, "MMBench TSV", "https://download.openmmlab.com/mmclassification/datasets/mmbench/")
    rows = read_mmbench_tsv(path)
    images = {str(row["index"]): row["image"] for row in rows}
    items = []
    for row in rows:
        image = str(row["image"])
        if len(image) <= 64 and image in images:  # newer TSVs point circular copies at the original's image
            image = images[image]
        answer = None if is_none(row.get("answer")) else str(row["answer"]).strip()
        items.append(
            EvalItem(
                key=str(row["index"]),
                question_id=int(row["index"]),
                text=mmbench_prompt(row, suffix),
                image=EmbeddedImage(image, f"{file_name} index {row['index']}"),
                max_new_tokens=LONG_ANSWER_MAX_NEW_TOKENS,
                subset=str(row.get("category", "")),
                meta={"row": {k: v for k, v in row.items() if k != "image"}, "answer": answer},
            )
        )
    return items


def load_mmbench(root: Path) -> list[EvalItem]:
    return _load_mmbench(root, MMBENCH_EN_FILE, MULTIPLE_CHOICE_SUFFIX)


def load_mmbench_cn(root: Path) -> list[EvalItem]:
    return _load_mmbench(root, MMBENCH_CN_FILE, MULTIPLE_CHOICE_SUFFIX_CN)


def score_mmbench(items: Sequence[EvalItem], predictions: Mapping[str, str]) -> dict:
    """Circular accuracy with the rule-based matcher; an empty dict for the test split (no answers)."""
    records = []
    for item in items:
        if item.key not in predictions or item.meta["answer"] is None:
            continue
        row = item.meta["row"]
        options = {letter: (None if is_none(row.get(letter)) else row[letter]) for letter in MMBENCH_OPTIONS}
        records.append({**{k: row[k] for k in ("category", "l2-category") if k in row}, **options,
                        "index": int(row["index"]), "prediction": predictions[item.key],
                        "answer": item.meta["answer"]})
    if not records:
        return {}
    return mmbench_circular_accuracy(records)


def mmbench_rows(metrics: dict) -> dict[str, float]:
    return {"accuracy": percent(metrics["accuracy"])} if "accuracy" in metrics else {}


def submit_mmbench(items: Sequence[EvalItem], predictions: Mapping[str, str], data: Path, out: Path) -> list[Path]:
    """The OpenCompass upload (.xlsx, or .tsv without openpyxl) for the rows that were run."""
    done = [item for item in items if item.key in predictions]
    rows = [item.meta["row"] for item in done]
    by_index = {int(item.meta["row"]["index"]): predictions[item.key] for item in done}
    return [write_mmbench_submission(rows, by_index, out / "mmbench_upload.xlsx")]


# ---- SEED-Bench (image) -------------------------------------------------------------------------


def load_seed(root: Path) -> list[EvalItem]:
    questions_path = require_file(root / "llava-seed-bench.jsonl", "SEED-Bench question file", "from LLaVA's eval.zip")
    annotation = read_json(require_file(root / "SEED-Bench.json", "SEED-Bench annotations", "the SEED-Bench release"))
    type_names = {v: k for k, v in annotation.get("question_type", {}).items()}
    truth = {str(q["question_id"]): q for q in annotation["questions"]}
    records = read_jsonl(questions_path)
    items = []
    for key, record in zip(unique_keys([r.get("question_id") for r in records]), records):
        require_fields(record, ("question_id", "image", "text"), f"{questions_path} question {key}")
        question = truth.get(str(record["question_id"]))
        if question is None:
            raise MQTError(f"SEED-Bench question {record['question_id']!r} is not in SEED-Bench.json.")
        if question.get("data_type") != "image":
            continue
        items.append(
            EvalItem(
                key=key, question_id=record["question_id"], text=with_suffix(record["text"], MULTIPLE_CHOICE_SUFFIX),
                image=root / record["image"], max_new_tokens=SHORT_ANSWER_MAX_NEW_TOKENS,
                subset=str(type_names.get(question["question_type_id"], question["question_type_id"])),
                meta={"answer": question["answer"]},
            )
        )
    if not items:
        raise MQTError(f"{questions_path} has no image question.")
    check_images(items, "SEED-Bench")
    return items


def score_seed(items: Sequence[EvalItem], predictions: Mapping[str, str]) -> dict:
    """convert_seed_for_submission.py's `eval_single(..., 'image')`: exact letter match."""
    per_type: dict[str, list[int]] = {}
    for item in items:
        if item.key in predictions:
            per_type.setdefault(item.subset, []).append(int(predictions[item.key] == item.meta["answer"]))
    hits = [h for values in per_type.values() for h in values]
    if not hits:
        raise MQTError("Nothing to score: no SEED-Bench question has a prediction.")
    return {"accuracy": sum(hits) / len(hits), "total": len(hits),
            "question_type": {name: sum(v) / len(v) for name, v in sorted(per_type.items())}}


def seed_rows(metrics: dict) -> dict[str, float]:
    return {"accuracy": percent(metrics["accuracy"])}


BENCHMARKS = (
    Benchmark("scienceqa", "SQA-IMG", "scienceqa", load_scienceqa, score_scienceqa, scienceqa_rows,
              ("img_accuracy",), source="LLaVA eval_science_qa.py (IMG subset)"),
    Benchmark("mmbench", "MMBench", "mmbench", load_mmbench, score_mmbench, mmbench_rows, ("accuracy",),
              submit=submit_mmbench, source="MMBench circular eval, rule-based matching (VLMEvalKit)"),
    Benchmark("mmbench_cn", "MMBench-CN", "mmbench", load_mmbench_cn, score_mmbench, mmbench_rows,
              ("accuracy",), submit=submit_mmbench, source="MMBench circular eval, rule-based matching"),
    Benchmark("seed", "SEED-IMG", "seed_bench", load_seed, score_seed, seed_rows, ("accuracy",),
              source="LLaVA convert_seed_for_submission.py (image questions)"),
)
