"""Short-answer VQA benchmarks: VQAv2, GQA, VizWiz and TextVQA, in LLaVA-1.5's eval layout.

Sources for the layouts and the flow: LLaVA scripts/v1_5/eval/{vqav2,gqa,vizwiz,textvqa}.sh,
llava/eval/model_vqa_loader.py (the prompt is `<image>\\n` + the question file's `text`, greedy,
max_new_tokens 128, the answer stripped), scripts/convert_{vqav2,vizwiz}_for_submission.py,
scripts/convert_gqa_for_eval.py and llava/eval/eval_textvqa.py. The per-question scores are the
scorers in `mqt_vlm.eval.scorers`.

VQAv2 test-dev and VizWiz test have no public answers: they produce the server upload files only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.benchmarks.base import (
    SHORT_ANSWER_MAX_NEW_TOKENS,
    SHORT_ANSWER_SUFFIX,
    Benchmark,
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
from mqt_vlm.eval.scorers import (
    gqa_correct,
    gqa_submission,
    textvqa_accuracy,
    vizwiz_submission,
    vqav2_submission,
    write_json_submission,
)

logger = logging.getLogger(__name__)


def _question_items(root: Path, questions: str, images: str, name: str) -> tuple[list[dict], list[EvalItem]]:
    """The LLaVA question file as items (meta filled in by the caller)."""
    path = require_file(root / questions, f"{name} question file", "from LLaVA's eval.zip")
    records = read_jsonl(path)
    for i, record in enumerate(records):
        require_fields(record, ("question_id", "image", "text"), f"{path} line {i + 1}")
    keys = unique_keys([r["question_id"] for r in records])
    items = [
        EvalItem(
            key=key,
            question_id=r["question_id"],
            text=with_suffix(r["text"], SHORT_ANSWER_SUFFIX),
            image=root / images / r["image"],
            max_new_tokens=SHORT_ANSWER_MAX_NEW_TOKENS,
            subset=str(r.get("category", "")),
        )
        for key, r in zip(keys, records)
    ]
    return records, items


def _mean(values: Sequence[float]) -> float:
    if not values:
        raise MQTError("Nothing to score: no item has a prediction.")
    return sum(values) / len(values)


# ---- VQAv2 (test-dev: server only) -------------------------------------------------------------


def load_vqav2(root: Path) -> list[EvalItem]:
    _, items = _question_items(root, "llava_vqav2_mscoco_test-dev2015.jsonl", "test2015", "VQAv2")
    check_images(items, "VQAv2")
    return items


def submit_vqav2(items: Sequence[EvalItem], predictions: Mapping[str, str], data: Path, out: Path) -> list[Path]:
    """The EvalAI upload: every test2015 question (from llava_vqav2_mscoco_test2015.jsonl when it is
    there, as LLaVA's converter does), answered "" where we have no prediction."""
    by_qid = {item.question_id: predictions[item.key] for item in items if item.key in predictions}
    full = data / "llava_vqav2_mscoco_test2015.jsonl"
    if full.is_file():
        question_ids = [r["question_id"] for r in read_jsonl(full)]
    else:
        logger.warning("llava_vqav2_mscoco_test2015.jsonl not found; the upload lists test-dev questions only.")
        question_ids = [item.question_id for item in items]
    return [write_json_submission(vqav2_submission(question_ids, by_qid), out / "vqav2_test-dev2015_upload.json")]


# ---- VizWiz (test: server only) ----------------------------------------------------------------


def load_vizwiz(root: Path) -> list[EvalItem]:
    records, items = _question_items(root, "llava_test.jsonl", "test", "VizWiz")
    items = [
        replace(item, meta={"image_name": r["image"]}) for item, r in zip(items, records)
    ]
    check_images(items, "VizWiz")
    return items


def submit_vizwiz(items: Sequence[EvalItem], predictions: Mapping[str, str], data: Path, out: Path) -> list[Path]:
    """The EvalAI upload for the questions that were run (all of them unless --limit was given)."""
    done = [item for item in items if item.key in predictions]
    rows = [{"question_id": item.key, "image": item.meta["image_name"]} for item in done]
    entries = vizwiz_submission(rows, {item.key: predictions[item.key] for item in done})
    return [write_json_submission(entries, out / "vizwiz_test_upload.json")]


# ---- GQA (testdev-balanced) ---------------------------------------------------------------------


def load_gqa(root: Path) -> list[EvalItem]:
    _, items = _question_items(root, "llava_gqa_testdev_balanced.jsonl", "data/images", "GQA")
    annotation_path = require_file(
        root / "data" / "testdev_balanced_questions.json", "GQA annotations", "from the GQA download page"
    )
    annotations = read_json(annotation_path)
    out = []
    for item in items:
        record = annotations.get(str(item.question_id))
        if record is None or "answer" not in record:
            raise MQTError(f"GQA question {item.question_id!r} has no answer in {annotation_path}.")
        out.append(replace(item, meta={"answer": record["answer"]}))
    check_images(out, "GQA")
    return out


def score_gqa(items: Sequence[EvalItem], predictions: Mapping[str, str]) -> dict:
    """GQA eval.py accuracy (every testdev-balanced question is balanced)."""
    hits = [float(gqa_correct(predictions[i.key], i.meta["answer"])) for i in items if i.key in predictions]
    return {"accuracy": _mean(hits), "total": len(hits)}


def submit_gqa(items: Sequence[EvalItem], predictions: Mapping[str, str], data: Path, out: Path) -> list[Path]:
    """The predictions file GQA's eval.py reads (`testdev_balanced_predictions.json`)."""
    entries = gqa_submission({item.question_id: predictions[item.key] for item in items if item.key in predictions})
    return [write_json_submission(entries, out / "testdev_balanced_predictions.json")]


# ---- TextVQA (val) ------------------------------------------------------------------------------


def textvqa_question(prompt: str) -> str:
    """`prompt_processor` of LLaVA's eval_textvqa.py: the question line of a prompt, lower-cased.

    The official code pairs predictions with annotations on (image id, this question), because the
    LLaVA question file's `question_id` is the image id.
    """
    lines = prompt.split("\n")
    if prompt.startswith("OCR tokens: "):
        match = re.search(r"Question: (.*?) Short answer:", prompt, re.DOTALL)
        if match is None:
            raise MQTError(f"Cannot find the question in TextVQA prompt {prompt[:80]!r}.")
        question = match.group(1)
    elif "Reference OCR token: " in prompt and len(lines) == 3:
        question = lines[1] if prompt.startswith("Reference OCR token:") else lines[0]
    elif len(lines) == 2:
        question = lines[0]
    else:
        raise MQTError(f"TextVQA prompt {prompt[:80]!r} has an unexpected shape (the official script asserts).")
    return question.lower()


def load_textvqa(root: Path) -> list[EvalItem]:
    _, items = _question_items(root, "llava_textvqa_val_v051_ocr.jsonl", "train_images", "TextVQA")
    annotation_path = require_file(
        root / "TextVQA_0.5.1_val.json", "TextVQA annotations", "https://dl.fbaipublicfiles.com/textvqa/data/"
    )
    data = read_json(annotation_path).get("data", [])
    annotations = {(a["image_id"], a["question"].lower()): a for a in data}
    out = []
    for item in items:
        record = annotations.get((item.question_id, textvqa_question(item.text)))
        if record is None:
            raise MQTError(
                f"TextVQA question {item.text.splitlines()[0]!r} (image {item.question_id}) is not in {annotation_path}."
            )
        out.append(replace(item, meta={"answers": list(record["answers"])}))
    check_images(out, "TextVQA")
    return out


def score_textvqa(items: Sequence[EvalItem], predictions: Mapping[str, str]) -> dict:
    """m4c TextVQA accuracy, averaged over the questions (eval_textvqa.py)."""
    values = [textvqa_accuracy(predictions[i.key], i.meta["answers"]) for i in items if i.key in predictions]
    return {"accuracy": _mean(values), "total": len(values)}


def accuracy_rows(metrics: dict) -> dict[str, float]:
    return {"accuracy": percent(metrics["accuracy"])}


def no_rows(metrics: dict) -> dict[str, float]:
    """Test-server benchmarks: nothing to score locally."""
    return {}


BENCHMARKS = (
    Benchmark("vqav2", "VQAv2", "vqav2", load_vqav2, None, no_rows, ("accuracy",), submit=submit_vqav2,
              source="VQA vqaEval.py on the EvalAI server (test-dev)"),
    Benchmark("gqa", "GQA", "gqa", load_gqa, score_gqa, accuracy_rows, ("accuracy",), submit=submit_gqa,
              source="LLaVA convert_gqa_for_eval.py + GQA eval.py"),
    Benchmark("vizwiz", "VizWiz", "vizwiz", load_vizwiz, None, no_rows, ("accuracy",), submit=submit_vizwiz,
              source="VizWiz-VQA server (test)"),
    Benchmark("textvqa", "TextVQA", "textvqa", load_textvqa, score_textvqa, accuracy_rows, ("accuracy",),
              source="LLaVA eval_textvqa.py + m4c_evaluator.py"),
)
