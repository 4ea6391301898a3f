"""The published-numbers CSV, the paper's 11-task average, the table, and MMMU / SEED scoring rules."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.benchmarks import EvalItem
from mqt_vlm.eval.benchmarks.choice import score_seed
from mqt_vlm.eval.benchmarks.mmmu import open_correct, parse_multi_choice, parse_open, score_mmmu
from mqt_vlm.eval.report import (
    PAPER_TASKS,
    ResultRow,
    markdown_table,
    paper_average,
    published_csv,
    read_baseline,
    read_results_csv,
    write_results_csv,
)


def test_published_numbers_match_design_section_5() -> None:
    rows = {(r.model, r.benchmark, r.metric, r.budget): r for r in read_baseline("paper")}
    assert published_csv().is_file()
    mqt = [rows[("MQT-LLaVA-7B", "gqa", "accuracy", m)].score for m in (2, 4, 8, 16, 36, 64, 144, 256)]
    assert mqt == [50.8, 53.0, 55.5, 57.6, 58.8, 60.0, 61.4, 61.6]
    assert rows[("MQT-LLaVA-7B", "mme", "perception", 16)].score == 1408
    assert rows[("MQT-LLaVA-7B", "average", "avg11", 256)].score == 59.3
    assert rows[("LLaVA-1.5-7B", "pope", "f1", 576)].score == 85.9
    assert rows[("LLaVA-1.5-7B", "vqav2", "accuracy", 576)].tflops == 8.7
    assert rows[("MQT-LLaVA-7B", "mmbench", "accuracy", 16)].tflops == 1.34
    assert rows[("MQT-LLaVA-7B", "vqav2", "accuracy", 2)].tflops is None


def test_eleven_task_average_is_computed_as_the_paper_does() -> None:
    scores = {("vqav2", "accuracy"): 76.8, ("scienceqa", "img_accuracy"): 67.6, ("gqa", "accuracy"): 61.6,
              ("vizwiz", "accuracy"): 53.8, ("mme", "perception"): 1434.0, ("mme", "cognition"): 353.6,
              ("pope", "f1"): 84.4, ("mmmu", "accuracy"): 34.8, ("mmbench", "accuracy"): 64.3,
              ("llavabench", "relative_score"): 64.6, ("mmvet", "total"): 29.8}
    assert {(b, m) for b, m, _ in PAPER_TASKS} == set(scores)
    rows = [ResultRow(b, m, 256, s, tflops=4.5) for (b, m), s in scores.items()]
    [average] = paper_average(rows + [ResultRow("textvqa", "accuracy", 256, 10.0)])  # TextVQA is not one of the 11
    by_hand = (76.8 + 67.6 + 61.6 + 53.8 + 1434 / 20 + 353.6 / 8 + 84.4 + 34.8 + 64.3 + 64.6 + 29.8) / 11
    assert (average.benchmark, average.metric, average.budget) == ("average", "avg11", 256)
    assert average.score == pytest.approx(by_hand) and average.tflops == 4.5
    [partial] = paper_average(rows[:3])
    assert partial.metric == "partial_avg" and partial.score == pytest.approx((76.8 + 67.6 + 61.6) / 3)


def test_results_csv_round_trip_and_table(tmp_path: Path) -> None:
    rows = [ResultRow("gqa", "accuracy", 2, 40.0, 1e-5, 1.5), ResultRow("gqa", "accuracy", 16, 45.25, 2e-5, 2.0),
            ResultRow("mme", "perception", 16, 1234.4, None, None)]
    path = write_results_csv(rows, tmp_path / "results.csv")
    back = read_results_csv(path, model="ours")
    assert [(r.benchmark, r.metric, r.budget, r.score, r.tflops, r.seconds) for r in back] == \
        [(r.benchmark, r.metric, r.budget, r.score, r.tflops, r.seconds) for r in rows]
    table = markdown_table(rows, read_baseline("paper"), [("gqa", "accuracy"), ("mme", "perception")])
    lines = table.splitlines()
    assert lines[0] == "| benchmark | 2 | 4 | 8 | 16 | 36 | 64 | 144 | 256 | 576 |"
    assert lines[2] == "| GQA | 40.0 | – | – | 45.2 | – | – | – | – | – |"
    assert lines[3].startswith("| GQA (MQT-LLaVA-7B) | 50.8 | 53.0 |")
    assert "| MME-P | – | – | – | 1234 |" in table and "| MME-P (LLaVA-1.5-7B) |" in table
    bad = tmp_path / "bad.csv"
    bad.write_text("benchmark,score\ngqa,1\n")
    with pytest.raises(MQTError, match="lacks the columns"):
        read_results_csv(bad)
    with pytest.raises(MQTError, match="not found"):
        read_baseline(tmp_path / "missing.csv")


def test_mmmu_multiple_choice_parsing_rules() -> None:
    rng = random.Random(0)
    options = ["red", "green", "blue", "yellow"]
    assert parse_multi_choice("(B)", options, rng) == "B"
    assert parse_multi_choice("B.", options, rng) == "B"  # punctuation stripped, then " B " found
    assert parse_multi_choice("I think (A) but maybe B", options, rng) == "A"  # brackets first
    assert parse_multi_choice("A or C? I pick C then", options, rng) == "C"  # the last one mentioned
    assert parse_multi_choice("The colour of the sky here is blue today", options, rng) == "C"  # text, > 5 words
    assert parse_multi_choice("blue", options, random.Random(42)) == random.Random(42).choice("ABCD")  # too short


def test_mmmu_open_answers_and_scoring() -> None:
    assert 3.5 in parse_open("So x = 3.50.")
    assert open_correct("3.5", parse_open("The answer is 3.5"))
    assert open_correct(["24/7", "3.43"], parse_open("Therefore the result is 3.43"))
    assert not open_correct("7", parse_open("It is 17"))
    items = [
        EvalItem("a", "a", "q", Path("x"), 8, subset="Art", meta={"answer": "B", "options": ["x", "y"], "question_type": "multiple-choice"}),
        EvalItem("b", "b", "q", Path("x"), 8, subset="Math", meta={"answer": "3.5", "options": [], "question_type": "open"}),
    ]
    result = score_mmmu(items, {"a": "(B)", "b": "x = 2"})
    assert result["accuracy"] == 0.5 and result["subject"] == {"Art": 1.0, "Math": 0.0}


def test_seed_needs_the_exact_letter() -> None:
    items = [EvalItem(str(i), str(i), "q", Path("x"), 8, subset="t", meta={"answer": "A"}) for i in range(3)]
    result = score_seed(items, {"0": "A", "1": "A.", "2": "a"})  # convert_seed_for_submission.py: text == answer
    assert result["accuracy"] == pytest.approx(1 / 3) and result["total"] == 3
