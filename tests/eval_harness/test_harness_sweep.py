"""The sweep end to end with a scripted answerer: exact metrics, resumption, submission files.

The scripted answerer answers everything right at m = 16 and follows fixed wrong patterns at m = 2,
so each expected number below is worked out by hand from the fixture's ground truth.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.benchmarks import EvalItem, parse_benchmarks
from mqt_vlm.eval.generator import Generated
from mqt_vlm.eval.runner import predictions_path, read_predictions
from mqt_vlm.eval.sweep import SweepConfig, run_sweep

BENCHMARKS = "pope,mme,gqa,scienceqa,mmbench,textvqa,vqav2,synthetic"


class Scripted:
    """Right answers at m = 16; at m = 2 "Yes" / "A" / a fixed word. Records every call."""

    num_queries = 16

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[str]]] = []
        self.asked: list[tuple[int, str, str]] = []  # (budget, key, prompt): keys repeat across benchmarks

    def answer(self, item: EvalItem, budget: int) -> str:
        meta = item.meta
        if "label" in meta:  # POPE
            return meta["label"].capitalize() + "." if budget == 16 else "Yes"
        if "task" in meta:  # MME
            return meta["answer"] if budget == 16 else "Yes"
        if "num_choices" in meta:  # ScienceQA
            return "ABCDE"[meta["answer"]] if budget == 16 else "A"
        if "row" in meta:  # MMBench
            return f"{meta['answer']}." if budget == 16 else "A"
        if "answers" in meta:  # TextVQA
            return meta["answers"][0].upper() if budget == 16 else "nikon"
        if item.subset == "describe":  # synthetic descriptions, scored per cell
            return meta["answer"] if budget == 16 else "none"
        if "answer" in meta and item.subset in ("global", "count", "cell", "relation"):  # synthetic
            return meta["answer"].capitalize() + "." if budget == 16 else "none"
        if "answer" in meta:  # GQA
            return meta["answer"].capitalize() + "." if budget == 16 else "the " + meta["answer"]
        return "Two." if budget == 16 else "one"  # VQAv2: no answers

    def __call__(self, items: Sequence[EvalItem], budget: int, max_new_tokens: int) -> list[Generated]:
        self.calls.append((budget, [item.key for item in items]))
        self.asked += [(budget, item.key, item.text) for item in items]
        return [Generated(self.answer(item, budget), 40 + len(item.text) // 10) for item in items]

    def tflops(self, budget: int, text_tokens: int) -> float:
        return (budget + text_tokens) / 1000


def config(root: Path, out: Path, **kwargs) -> SweepConfig:
    """Plots are checked once, in the CLI test; here they would only cost time."""
    return SweepConfig(benchmarks=parse_benchmarks(BENCHMARKS), budgets=[16, 2], data_root=root, out=out,
                       model="scripted", progress=False, plots=False, **kwargs)


def results(out: Path) -> dict[tuple[str, str, int], float]:
    with (out / "results.csv").open() as handle:
        return {(r["benchmark"], r["metric"], int(r["budget"])): float(r["score"]) for r in csv.DictReader(handle)}


def test_metrics_equal_the_hand_computation(eval_data, tmp_path: Path) -> None:
    root, truth = eval_data
    out = tmp_path / "out"
    run_sweep(config(root, out), Scripted(), echo=lambda _: None)
    got = results(out)
    expected = {
        ("pope", "f1", 16): 100.0, ("pope", "accuracy", 16): 100.0,
        # m=2 always "Yes": adversarial/popular P=1/2 R=1 F1=2/3, random F1=1 -> mean 7/9
        ("pope", "f1", 2): 100 * (2 / 3 + 2 / 3 + 1) / 3, ("pope", "yes_ratio_random", 2): 100.0,
        ("mme", "perception", 16): 400.0, ("mme", "cognition", 16): 200.0,
        # "Yes" everywhere: one of two right per image, no image fully right -> 50 per task
        ("mme", "perception", 2): 100.0, ("mme", "cognition", 2): 50.0,
        ("gqa", "accuracy", 16): 100.0, ("gqa", "accuracy", 2): 0.0,  # "the cat" != "cat"
        ("scienceqa", "img_accuracy", 16): 100.0, ("scienceqa", "img_accuracy", 2): 200 / 3,
        # always "A": questions 0 and 1 fail their rotated copy, question 2 has no copy -> 1/3
        ("mmbench", "accuracy", 16): 100.0, ("mmbench", "accuracy", 2): 100 / 3,
        # "nikon" earns 1.0 on the first question (7 of 10 humans), 0 on the others
        ("textvqa", "accuracy", 16): 100.0, ("textvqa", "accuracy", 2): 100 / 3,
        ("synthetic", "accuracy", 16): 100.0,
    }
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-3), key
    answers = [a for a, t in truth["synthetic"].values() if t != "describe"]
    assert got[("synthetic", "accuracy", 2)] == pytest.approx(100 * answers.count("none") / len(answers), abs=1e-3)
    types = {t for _, t in truth["synthetic"].values() if t != "describe"}
    assert {("synthetic", f"accuracy_{t}", 16) for t in types} <= set(got)
    # descriptions are scored per cell, apart from the question accuracy: all right at 16, none at 2
    assert got[("synthetic", "describe_cell", 16)] == 100.0 and got[("synthetic", "describe_cell", 2)] == 0.0
    assert not any(b == "vqav2" for b, _, _ in got)  # no public answers, no score
    # the paper average over the 7 of 11 tasks present, MME-P / 20 and MME-C / 8
    tasks = [got[("scienceqa", "img_accuracy", 2)], got[("gqa", "accuracy", 2)], 100 / 20, 50 / 8,
             got[("pope", "f1", 2)], got[("mmbench", "accuracy", 2)]]
    assert got[("average", "partial_avg", 2)] == pytest.approx(sum(tasks) / len(tasks), abs=1e-3)


def test_submission_files_and_metrics_json(eval_data, tmp_path: Path) -> None:
    root, truth = eval_data
    out = tmp_path / "out"
    run_sweep(config(root, out), Scripted(), echo=lambda _: None)
    upload = json.loads((out / "submissions/vqav2/m016/vqav2_test-dev2015_upload.json").read_text())
    # every test2015 question in file order; ours answered (normalised), the rest ""
    assert [e["question_id"] for e in upload] == truth["vqav2"]
    assert [e["answer"] for e in upload] == ["2", "2", "2", "", ""]
    gqa = json.loads((out / "submissions/gqa/m016/testdev_balanced_predictions.json").read_text())
    assert {e["questionId"]: e["prediction"] for e in gqa} == truth["gqa"]
    table = (out / "submissions/mmbench/m002").glob("mmbench_upload.*")
    assert next(table).stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pope"]["budgets"]["2"]["metrics"]["splits"]["random"]["f1"] == 1.0
    assert metrics["mme"]["budgets"]["16"]["questions"] == 8
    assert "eval_pope.py" in metrics["pope"]["source"]
    assert (out / "results.md").read_text().count("| POPE |") == 1


def test_resume_generates_only_what_is_missing(eval_data, tmp_path: Path) -> None:
    root, _ = eval_data
    out = tmp_path / "out"
    first = Scripted()
    run_sweep(config(root, out, limit=1, batch_size=2), first, echo=lambda _: None)
    asked_first = sum(len(keys) for _, keys in first.calls)
    second = Scripted()
    run_sweep(config(root, out, batch_size=4), second, echo=lambda _: None)
    asked_second = second.asked
    assert len(set(asked_second)) == len(asked_second) and not set(asked_second) & set(first.asked)
    third = Scripted()
    run_sweep(config(root, out, batch_size=4), third, echo=lambda _: None)
    assert third.calls == []
    total = sum(len(read_predictions(predictions_path(out, b.name, m))) for b in parse_benchmarks(BENCHMARKS) for m in (2, 16))
    assert asked_first + len(asked_second) == total
    # every line carries its budget
    lines = predictions_path(out, "pope", 2).read_text().splitlines()
    assert {json.loads(line)["budget"] for line in lines} == {2}


def test_interrupted_file_is_repaired_and_finished(eval_data, tmp_path: Path) -> None:
    root, _ = eval_data
    out = tmp_path / "out"
    run_sweep(config(root, out), Scripted(), echo=lambda _: None)
    path = predictions_path(out, "gqa", 2)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + lines[2][:25])  # a crash mid-line
    again = Scripted()
    run_sweep(config(root, out), again, echo=lambda _: None)
    assert [keys for m, keys in again.calls] == [[json.loads(lines[2])["key"], json.loads(lines[3])["key"]]]
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()] == [json.loads(x)["key"] for x in lines]


def test_changed_prompt_or_model_is_refused(eval_data, tmp_path: Path) -> None:
    root, _ = eval_data
    out = tmp_path / "out"
    run_sweep(config(root, out), Scripted(), echo=lambda _: None)
    other = SweepConfig(benchmarks=parse_benchmarks("gqa"), budgets=[2], data_root=root, out=out, model="another",
                        progress=False, plots=False)
    with pytest.raises(MQTError, match="holds predictions from"):
        run_sweep(other, Scripted(), echo=lambda _: None)
    path = predictions_path(out, "gqa", 2)
    record = json.loads(path.read_text().splitlines()[0])
    record["prompt"] = "something else"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(MQTError, match="different prompt"):
        run_sweep(config(root, out), Scripted(), echo=lambda _: None)


def test_budget_outside_the_model_is_refused(eval_data, tmp_path: Path) -> None:
    root, _ = eval_data
    too_big = SweepConfig(benchmarks=parse_benchmarks("gqa"), budgets=[2, 36], data_root=root, out=tmp_path,
                          model="scripted", progress=False, plots=False)
    with pytest.raises(MQTError, match=r"1\.\.16"):
        run_sweep(too_big, Scripted(), echo=lambda _: None)


def test_mmbench_test_split_without_answers_gives_an_upload_and_no_score(eval_data, tmp_path: Path) -> None:
    root, _ = eval_data
    source = (root / "mmbench" / "mmbench_dev_20230712.tsv").read_text().splitlines()
    header = source[0].split("\t")
    drop = header.index("answer")
    lines = ["\t".join(cell for i, cell in enumerate(line.split("\t")) if i != drop) for line in source]
    (tmp_path / "data" / "mmbench").mkdir(parents=True)
    (tmp_path / "data" / "mmbench" / "mmbench_dev_20230712.tsv").write_text("\n".join(lines) + "\n")
    notes: list[str] = []
    config = SweepConfig(benchmarks=parse_benchmarks("mmbench"), budgets=[4], data_root=tmp_path / "data",
                         out=tmp_path / "out", model="scripted", progress=False, plots=False)
    result = run_sweep(config, Scripted(), echo=notes.append)
    assert [r for r in result.rows if r.benchmark == "mmbench"] == []
    upload = next((tmp_path / "out/submissions/mmbench/m004").glob("mmbench_upload.*"))
    if upload.suffix == ".tsv":  # without openpyxl; with it, an .xlsx
        assert len(upload.read_text().splitlines()) == 1 + 5
    assert any("MMBench has no public answers here" in note and str(upload) in note for note in notes)
