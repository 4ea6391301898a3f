"""Submission files for the VQAv2, VizWiz, MMBench servers and the GQA eval.

Reference files: LLaVA scripts/convert_vqav2_for_submission.py, convert_vizwiz_for_submission.py,
convert_mmbench_for_submission.py, convert_gqa_for_eval.py.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.scorers import (
    gqa_submission,
    mmbench_submission_table,
    vizwiz_submission,
    vqav2_submission,
    write_json_submission,
    write_mmbench_submission,
)
from mqt_vlm.eval.scorers import submissions


def test_vqav2_submission_normalises_and_fills_missing() -> None:
    entries = vqav2_submission([1, 2, 3], {1: "Two dogs.", 3: "Yes!"})
    assert entries == [
        {"question_id": 1, "answer": "2 dogs"},
        {"question_id": 2, "answer": ""},  # no prediction -> "" (LLaVA does the same)
        {"question_id": 3, "answer": "yes"},
    ]


def test_vizwiz_submission() -> None:
    questions = [{"question_id": 7, "image": "VizWiz_test_00000007.jpg"}]
    assert vizwiz_submission(questions, {7: "The Coca-Cola"}) == [
        {"image": "VizWiz_test_00000007.jpg", "answer": "coca cola"}
    ]
    with pytest.raises(MQTError, match="no prediction"):
        vizwiz_submission(questions, {})


def test_gqa_submission() -> None:
    assert gqa_submission({"q1": "Yes.", "q2": "Table"}) == [
        {"questionId": "q1", "prediction": "yes"},
        {"questionId": "q2", "prediction": "table"},
    ]


def test_write_json_submission(tmp_path: Path) -> None:
    path = write_json_submission([{"question_id": 1, "answer": "yes"}], tmp_path / "up" / "vqav2.json")
    assert json.loads(path.read_text()) == [{"question_id": 1, "answer": "yes"}]


MMBENCH_ROWS = [
    {"index": 0, "question": "What animal?", "hint": "", "A": "cat", "B": "dog", "C": "", "D": "",
     "answer": "A", "category": "cp", "image": "<b64>", "source": "x", "l2-category": "P",
     "comment": "", "split": "dev"},
    {"index": 1_000_000, "question": "What animal?", "hint": "", "A": "dog", "B": "cat", "C": "",
     "D": "", "answer": "B", "category": "cp", "image": "<b64>", "source": "x", "l2-category": "P",
     "comment": "", "split": "dev"},
]


def test_mmbench_submission_table() -> None:
    columns, rows = mmbench_submission_table(MMBENCH_ROWS, {0: "A"})
    # hint/category/source/image/comment/l2-category dropped; prediction inserted at position 6
    assert columns == ["index", "question", "A", "B", "C", "D", "prediction", "answer", "split"]
    assert rows[0] == [0, "What animal?", "cat", "dog", "", "", "A", "A", "dev"]
    assert rows[1][6] is None  # no prediction for this row


def test_write_mmbench_submission_without_openpyxl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(submissions, "_openpyxl_available", lambda: False)
    with caplog.at_level(logging.WARNING):
        path = write_mmbench_submission(MMBENCH_ROWS, {0: "A", 1_000_000: "B"}, tmp_path / "mmb.xlsx")
    assert path == tmp_path / "mmb.tsv"
    assert "openpyxl" in caplog.text
    with path.open(newline="") as handle:
        table = list(csv.reader(handle, dialect="excel-tab"))
    assert table[0][6] == "prediction"
    assert [row[6] for row in table[1:]] == ["A", "B"]


def test_write_mmbench_submission_with_openpyxl(tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    path = write_mmbench_submission(MMBENCH_ROWS, {0: "A"}, tmp_path / "mmb.xlsx")
    sheet = openpyxl.load_workbook(path).active
    assert [cell.value for cell in sheet[1]][6] == "prediction"
