"""Submission files for the benchmarks scored on test servers (VQAv2, VizWiz, MMBench) and GQA.

Sources: LLaVA scripts/convert_vqav2_for_submission.py, convert_vizwiz_for_submission.py,
convert_mmbench_for_submission.py and convert_gqa_for_eval.py (commit
ce1aa08d129bd7df931a7067bcb79cf3cb3a1af5). Answers go through the same
post-processing LLaVA applies, so a server score matches LLaVA's pipeline:

* VQAv2: a JSON list of {"question_id", "answer"} for every test question, in test-file order; the
  answer is `normalize_vqa_answer(text)`; a question with no prediction gets "" (as LLaVA does).
* VizWiz: a JSON list of {"image", "answer"}; every test question must have a prediction (LLaVA
  asserts it).
* MMBench: the annotation TSV rows minus hint/category/source/image/comment/l2-category, with a
  "prediction" column inserted at position 6 (after index, question, A-D). The server wants .xlsx;
  that needs openpyxl, which this project does not depend on. Without it we write a tab-separated
  .tsv next to the requested path and log a warning: convert it (e.g. open and save as .xlsx)
  before uploading.
* GQA: a JSON list of {"questionId", "prediction"} with `gqa_prediction(text)`, for the GQA eval.py.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.scorers.answer_normalization import normalize_vqa_answer
from mqt_vlm.eval.scorers.gqa import gqa_prediction

logger = logging.getLogger(__name__)

MMBENCH_DROPPED_COLUMNS = ("hint", "category", "source", "image", "comment", "l2-category")
MMBENCH_PREDICTION_POSITION = 6


def vqav2_submission(question_ids: Sequence[int], predictions: Mapping[int, str]) -> list[dict]:
    """Entries for the VQAv2 server: every test question, missing predictions answered ""."""
    entries = []
    for qid in question_ids:
        answer = normalize_vqa_answer(predictions[qid]) if qid in predictions else ""
        entries.append({"question_id": qid, "answer": answer})
    return entries


def vizwiz_submission(questions: Sequence[Mapping[str, object]], predictions: Mapping[object, str]) -> list[dict]:
    """Entries for the VizWiz server. `questions`: test rows with "question_id" and "image"."""
    entries = []
    for row in questions:
        qid = row["question_id"]
        if qid not in predictions:
            raise MQTError(f"VizWiz question {qid!r} has no prediction; the server needs every question.")
        entries.append({"image": row["image"], "answer": normalize_vqa_answer(predictions[qid])})
    return entries


def gqa_submission(predictions: Mapping[object, str]) -> list[dict]:
    """Entries for the GQA eval.py predictions file, in `predictions` order."""
    return [{"questionId": qid, "prediction": gqa_prediction(text)} for qid, text in predictions.items()]


def write_json_submission(entries: list[dict], path: str | Path) -> Path:
    """Write submission entries as one JSON list (what the VQAv2, VizWiz and GQA tools read)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


def mmbench_submission_table(
    annotation_rows: Sequence[Mapping[str, object]], predictions: Mapping[int, str]
) -> tuple[list[str], list[list[object]]]:
    """Columns and rows of the MMBench upload: annotation columns minus the dropped ones, plus
    "prediction" at position 6 (None where a row has no prediction)."""
    if not annotation_rows:
        raise MQTError("MMBench submission needs the annotation rows (the benchmark TSV).")
    columns = [c for c in annotation_rows[0] if c not in MMBENCH_DROPPED_COLUMNS]
    if "index" not in columns:
        raise MQTError("MMBench annotation rows need an 'index' column.")
    columns.insert(min(MMBENCH_PREDICTION_POSITION, len(columns)), "prediction")
    table = []
    for row in annotation_rows:
        index = int(row["index"])  # type: ignore[call-overload]
        values = {**row, "prediction": predictions.get(index)}
        table.append([values.get(column) for column in columns])
    return columns, table


def _openpyxl_available() -> bool:
    return importlib.util.find_spec("openpyxl") is not None


def write_mmbench_submission(
    annotation_rows: Sequence[Mapping[str, object]], predictions: Mapping[int, str], path: str | Path
) -> Path:
    """Write the MMBench upload; returns the path written (.xlsx, or .tsv without openpyxl)."""
    columns, table = mmbench_submission_table(annotation_rows, predictions)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if _openpyxl_available():
        import openpyxl  # optional; imported only when present

        workbook = openpyxl.Workbook()
        sheet = workbook.active
        sheet.append(columns)
        for row in table:
            sheet.append(row)
        xlsx = path.with_suffix(".xlsx")
        workbook.save(xlsx)
        return xlsx
    tsv = path.with_suffix(".tsv")
    logger.warning("openpyxl is not installed: wrote %s instead of an .xlsx; convert it before upload.", tsv)
    with tsv.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, dialect="excel-tab")
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in row] for row in table])
    return tsv
