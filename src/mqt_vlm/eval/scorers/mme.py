"""MME scores, reproducing the MME calculation tool.

Source: the MME benchmark's eval_tool/calculation.py (`calculate_metrics`, in tools/eval_tool.zip of
BradyFU/Awesome-Multimodal-Large-Language-Models, Evaluation branch, commit
1c1d69e138b57cf8b0400427927bfb8ed4285458), fed by LLaVA's playground/data/eval/MME/
convert_answer_to_mme.py, which writes one `image\\tquestion\\tanswer\\tprediction\\n` line per question,
per task, in the benchmark's own order (the two questions of an image are adjacent).

Rules:
* Answer parsing (`mme_parse_answer`): lower-case; exactly "yes"/"no" stand; otherwise look at the
  first 4 characters only: "yes" inside them -> yes, else "no" inside them -> no, else "other".
* acc = fraction of questions whose parsed answer equals the label ("other" is always wrong).
* acc_plus = fraction of images with both questions right. Images are the task's rows taken two at a
  time in file order (the tool never looks at the image name; we check it to catch misordered input).
* score = acc * 100 + acc_plus * 100 per task (so 200 max); perception = sum over the 10 perception
  tasks, cognition = sum over the 4 cognition tasks, total = perception + cognition.

Quirks reproduced: "Not sure" and "None" read as "no" ("not " / "none" hold "no"); "know..." and
"snow" read as "no"; "The answer is yes" is "other" (its first 4 characters are "the "); "  yes"
(two leading spaces) is "other". A task absent from `rows` is left out of the sums (the tool would
crash on the missing file instead).

The tool reads its files with `readlines()`, so every prediction it parses carries the line's "\\n";
that never changes a reading (a newline cannot complete "yes" or "no"), so it is not added here. A
prediction holding a tab or a line break ("\\n", "\\r") breaks the file's one-line-per-question format
and the tool crashes on it; here the whole string is parsed instead (LLaVA strips its outputs, so only
inner line breaks can occur).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from mqt_vlm.errors import MQTError

PERCEPTION_TASKS = (
    "existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
    "artwork", "OCR",
)
COGNITION_TASKS = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
_ROW_FIELDS = ("task", "image", "question", "answer", "prediction")


def mme_parse_answer(prediction: str) -> Literal["yes", "no", "other"]:
    """`parse_pred_ans`: the MME tool's reading of a free-form answer."""
    text = prediction.lower()
    if text in ("yes", "no"):
        return text  # type: ignore[return-value]
    prefix = text[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


def _task_rows(rows: Sequence[Mapping[str, str]]) -> dict[str, list[Mapping[str, str]]]:
    known = set(PERCEPTION_TASKS) | set(COGNITION_TASKS)
    by_task: dict[str, list[Mapping[str, str]]] = {}
    for i, row in enumerate(rows):
        missing = [field for field in _ROW_FIELDS if field not in row]
        if missing:
            raise MQTError(f"MME row {i} lacks {missing}; each row needs {list(_ROW_FIELDS)}.")
        if row["task"] not in known:
            raise MQTError(f"MME row {i} has unknown task {row['task']!r}; known: {sorted(known)}.")
        if str(row["answer"]).lower() not in ("yes", "no"):
            raise MQTError(f"MME row {i} has answer {row['answer']!r}; MME labels are yes or no.")
        by_task.setdefault(row["task"], []).append(row)
    return by_task


def _score_task(task: str, task_rows: list[Mapping[str, str]]) -> dict[str, float | int]:
    if len(task_rows) % 2:
        raise MQTError(
            f"MME task {task!r} has {len(task_rows)} rows; every image has exactly two questions."
        )
    correct = both_correct = other = 0
    for first, second in zip(task_rows[::2], task_rows[1::2]):
        if first["image"] != second["image"]:
            raise MQTError(
                f"MME task {task!r}: rows for {first['image']!r} and {second['image']!r} are paired; "
                "keep the benchmark's file order so an image's two questions are adjacent."
            )
        image_correct = 0
        for row in (first, second):
            parsed = mme_parse_answer(str(row["prediction"]))
            other += parsed == "other"
            if parsed == str(row["answer"]).lower():
                image_correct += 1
        correct += image_correct
        both_correct += image_correct == 2
    acc = correct / len(task_rows)
    acc_plus = both_correct / (len(task_rows) // 2)
    score = 0.0
    score += acc * 100
    score += acc_plus * 100
    return {"acc": acc, "acc_plus": acc_plus, "score": score, "other": other}


def mme_scores(rows: list[dict]) -> dict:
    """Per-task acc / acc_plus / score and the perception, cognition and total sums.

    Each row: {"task", "image", "question", "answer" ("yes"/"no", any case), "prediction"}, in the
    benchmark's file order. Returns {"tasks": {task: {...}}, "perception", "cognition", "total"}.
    """
    if not rows:
        raise MQTError("MME needs at least one row to score.")
    by_task = _task_rows(rows)
    tasks = {task: _score_task(task, by_task[task]) for task in (*PERCEPTION_TASKS, *COGNITION_TASKS)
             if task in by_task}
    perception = 0.0
    for task in PERCEPTION_TASKS:
        if task in tasks:
            perception += tasks[task]["score"]
    cognition = 0.0
    for task in COGNITION_TASKS:
        if task in tasks:
            cognition += tasks[task]["score"]
    return {"tasks": tasks, "perception": perception, "cognition": cognition,
            "total": perception + cognition}
