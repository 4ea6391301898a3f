"""Yes/no benchmarks: POPE (three COCO splits) and MME (perception and cognition).

POPE source: LLaVA scripts/v1_5/eval/pope.sh and llava/eval/eval_pope.py. The question file
`llava_pope_test.jsonl` tags each question with its split (`category`); each split's labels are the
lines of `coco/coco_pope_{split}.json`, matched to that split's questions *by order*, as the official
script does. The paper's POPE number is the F1 averaged over the three splits.

MME source: LLaVA scripts/v1_5/eval/mme.sh, playground/data/eval/MME/convert_answer_to_mme.py and the
MME eval_tool/calculation.py (`mme_scores`). The ground truth is read from the benchmark's own
`MME_Benchmark_release_version/<task>/[questions_answers_YN/]<image>.txt` files ("question<TAB>answer"
lines), and each LLaVA prompt is mapped back to the benchmark's question exactly as the converter
does: drop the short-answer suffix, re-append " Please answer yes or no." (with the two-space variant
some MME files use).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.benchmarks.base import (
    SHORT_ANSWER_MAX_NEW_TOKENS,
    SHORT_ANSWER_SUFFIX,
    Benchmark,
    EvalItem,
    check_images,
    first_n_per_subset,
    percent,
    read_jsonl,
    require_fields,
    require_file,
    unique_keys,
    with_suffix,
)
from mqt_vlm.eval.scorers import mme_scores, pope_metrics

logger = logging.getLogger(__name__)

POPE_SPLITS = ("adversarial", "popular", "random")
MME_IMAGES = "MME_Benchmark_release_version"
_YES_NO = "Please answer yes or no."


def _read_questions(path: Path) -> list[dict]:
    records = read_jsonl(path)
    for i, record in enumerate(records):
        require_fields(record, ("question_id", "image", "text"), f"{path} line {i + 1}")
    return records


# ---- POPE ---------------------------------------------------------------------------------------


def load_pope(root: Path) -> list[EvalItem]:
    questions_path = require_file(root / "llava_pope_test.jsonl", "POPE question file", "from LLaVA's eval.zip")
    records = _read_questions(questions_path)
    keys = unique_keys([r["question_id"] for r in records])
    by_split: dict[str, list[tuple[str, dict]]] = {}
    for key, record in zip(keys, records):
        if "category" not in record:
            raise MQTError(f"POPE question {record['question_id']!r} has no 'category' (its split).")
        by_split.setdefault(record["category"], []).append((key, record))
    items = []
    for split, rows in by_split.items():
        label_path = require_file(
            root / "coco" / f"coco_pope_{split}.json", f"POPE labels for split {split!r}",
            "the `coco` folder of the POPE repository",
        )
        labels = read_jsonl(label_path)
        if len(labels) != len(rows):
            raise MQTError(
                f"POPE split {split!r}: {len(rows)} questions but {len(labels)} labels in {label_path}; "
                "the labels are matched by order, so both files must come from the same release."
            )
        for (key, record), label in zip(rows, labels):
            if label.get("image") not in (None, record["image"]):
                logger.warning("POPE %s: question %s is on %s but its label line is for %s.",
                               split, record["question_id"], record["image"], label.get("image"))
            items.append(
                EvalItem(
                    key=key,
                    question_id=record["question_id"],
                    text=with_suffix(record["text"], SHORT_ANSWER_SUFFIX),
                    image=root / "val2014" / record["image"],
                    max_new_tokens=SHORT_ANSWER_MAX_NEW_TOKENS,
                    subset=split,
                    meta={"label": str(label["label"])},
                )
            )
    check_images(items, "POPE")
    return items


def score_pope(items: Sequence[EvalItem], predictions: Mapping[str, str]) -> dict:
    """eval_pope.py per split, plus the across-split means the papers report."""
    splits: dict[str, dict] = {}
    for split in sorted({item.subset for item in items}):
        done = [item for item in items if item.subset == split and item.key in predictions]
        if done:
            splits[split] = pope_metrics([predictions[i.key] for i in done], [i.meta["label"] for i in done])
    if not splits:
        raise MQTError("Nothing to score: no POPE question has a prediction.")
    mean = {name: sum(m[name] for m in splits.values()) / len(splits) for name in ("accuracy", "precision",
                                                                                     "recall", "f1", "yes_ratio")}
    return {**mean, "splits": splits}


def pope_rows(metrics: dict) -> dict[str, float]:
    rows = {"f1": percent(metrics["f1"]), "accuracy": percent(metrics["accuracy"])}
    for split, values in metrics["splits"].items():
        for name in ("f1", "accuracy", "precision", "recall", "yes_ratio"):
            rows[f"{name}_{split}"] = percent(values[name])
    return rows


# ---- MME ----------------------------------------------------------------------------------------


def _mme_ground_truth(images_root: Path, task: str) -> dict[tuple[str, str], str]:
    """(answer file name, question) -> "Yes"/"No", read as `get_gt` in convert_answer_to_mme.py."""
    task_dir = images_root / task
    qa_dir = task_dir / "questions_answers_YN" if (task_dir / "images").is_dir() else task_dir
    if not qa_dir.is_dir():
        raise MQTError(f"MME task folder {qa_dir} is missing; unpack the MME release into {images_root}.")
    truth = {}
    for txt in sorted(qa_dir.glob("*.txt")):
        for line in txt.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            parts = line.strip().split("\t")
            if len(parts) != 2:
                raise MQTError(f"{txt}: expected 'question<TAB>answer' lines, got {line!r}.")
            truth[(txt.name, parts[0])] = parts[1]
    return truth


def mme_question(prompt: str, answer_file: str, truth: Mapping[tuple[str, str], str]) -> str:
    """The MME question a LLaVA prompt stands for (convert_answer_to_mme.py's rewriting)."""
    if SHORT_ANSWER_SUFFIX in prompt:
        prompt = prompt.replace(SHORT_ANSWER_SUFFIX, "").strip()
    if _YES_NO not in prompt:
        prompt = prompt + " " + _YES_NO
        if (answer_file, prompt) not in truth:
            prompt = prompt.replace(" " + _YES_NO, "  " + _YES_NO)
    return prompt


def load_mme(root: Path) -> list[EvalItem]:
    questions_path = require_file(root / "llava_mme.jsonl", "MME question file", "from LLaVA's eval.zip")
    records = _read_questions(questions_path)
    images_root = root / MME_IMAGES
    if not images_root.is_dir():
        raise MQTError(f"MME images not found: {images_root}. Unpack the MME release there (docs/evaluation.md).")
    truths: dict[str, dict[tuple[str, str], str]] = {}
    items = []
    for key, record in zip(unique_keys([r["question_id"] for r in records]), records):
        qid = str(record["question_id"])
        task = qid.split("/")[0]
        answer_file = qid.split("/")[-1].split(".")[0] + ".txt"
        if task not in truths:
            truths[task] = _mme_ground_truth(images_root, task)
        text = with_suffix(record["text"], SHORT_ANSWER_SUFFIX)
        question = mme_question(record["text"], answer_file, truths[task])
        answer = truths[task].get((answer_file, question))
        if answer is None:
            raise MQTError(f"MME question {question!r} ({qid}) is not in {images_root / task}'s answer files.")
        items.append(
            EvalItem(
                key=key, question_id=record["question_id"], text=text, image=images_root / record["image"],
                max_new_tokens=SHORT_ANSWER_MAX_NEW_TOKENS, subset=task,
                meta={"task": task, "image": answer_file, "question": question, "answer": answer},
            )
        )
    check_images(items, "MME")
    return items


def limit_mme(items: list[EvalItem], n: int) -> list[EvalItem]:
    """`--limit` per task, rounded up to whole images (two questions each), which MME's acc+ needs."""
    return first_n_per_subset(items, n + n % 2)


def score_mme(items: Sequence[EvalItem], predictions: Mapping[str, str]) -> dict:
    rows = [{**item.meta, "prediction": predictions[item.key]} for item in items if item.key in predictions]
    return mme_scores(rows)


def mme_rows(metrics: dict) -> dict[str, float]:
    rows = {name: float(metrics[name]) for name in ("perception", "cognition", "total")}
    for task, values in metrics["tasks"].items():
        rows[f"score_{task}"] = float(values["score"])
    return rows


def pope_with_limit(items: list[EvalItem], n: int) -> list[EvalItem]:
    return first_n_per_subset(items, n)


BENCHMARKS = (
    Benchmark("pope", "POPE", "pope", load_pope, score_pope, pope_rows, ("f1",), limit=pope_with_limit,
              source="LLaVA eval_pope.py (F1 averaged over the three splits)"),
    Benchmark("mme", "MME", "MME", load_mme, score_mme, mme_rows, ("perception", "cognition"), limit=limit_mme,
              source="LLaVA convert_answer_to_mme.py + MME eval_tool/calculation.py"),
)
