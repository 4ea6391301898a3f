"""`mqt eval` with the tiny random model on the fixture benchmarks at two budgets, then a rerun.

The metrics in results.csv are recomputed here by hand: read the written predictions, pair them
with the fixture's own ground truth (not the loaders'), and call the scorers directly.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mqt_vlm.cli.main import main
from mqt_vlm.eval.scorers import (
    gqa_correct,
    mmbench_circular_accuracy,
    mme_scores,
    pope_metrics,
    scienceqa_accuracy,
    textvqa_accuracy,
)

BENCHMARKS = "pope,mme,gqa,scienceqa,mmbench,textvqa,vqav2,synthetic"
BUDGETS = (2, 16)


def run_cli(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0


def predictions(out: Path, benchmark: str, budget: int) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions" / benchmark / f"m{budget:03d}.jsonl").read_text().splitlines()]


def hand_metrics(out: Path, truth: dict, budget: int) -> dict[tuple[str, str], float]:
    """The headline numbers, straight from the prediction files and the scorers."""
    got: dict[tuple[str, str], float] = {}
    pope = {r["question_id"]: r["text"] for r in predictions(out, "pope", budget)}
    f1s = []
    for split in ("adversarial", "popular", "random"):
        qids = [q for q, (s, _) in truth["pope"].items() if s == split]
        f1s.append(pope_metrics([pope[q] for q in qids], [truth["pope"][q][1] for q in qids])["f1"])
    got[("pope", "f1")] = 100 * sum(f1s) / 3
    mme = [r["text"] for r in predictions(out, "mme", budget)]
    scores = mme_scores([{**row, "prediction": text} for row, text in zip(truth["mme"], mme)])
    got[("mme", "perception")], got[("mme", "cognition")] = scores["perception"], scores["cognition"]
    gqa = predictions(out, "gqa", budget)
    got[("gqa", "accuracy")] = 100 * sum(gqa_correct(r["text"], truth["gqa"][r["question_id"]]) for r in gqa) / len(gqa)
    sqa = [{"prediction": r["text"], "answer": truth["scienceqa"][r["key"]][0], "num_choices": truth["scienceqa"][r["key"]][1],
            "has_image": True} for r in predictions(out, "scienceqa", budget)]
    got[("scienceqa", "img_accuracy")] = 100 * scienceqa_accuracy(sqa)["img_accuracy"]
    records = [{"index": r["question_id"], "prediction": r["text"], "answer": truth["mmbench"][r["question_id"]]["answer"],
                **truth["mmbench"][r["question_id"]]["options"]} for r in predictions(out, "mmbench", budget)]
    got[("mmbench", "accuracy")] = 100 * mmbench_circular_accuracy(records)["accuracy"]
    textvqa = [r["text"] for r in predictions(out, "textvqa", budget)]
    got[("textvqa", "accuracy")] = 100 * sum(textvqa_accuracy(t, a) for t, a in zip(textvqa, truth["textvqa"])) / 3
    synthetic = [r for r in predictions(out, "synthetic", budget) if truth["synthetic"][r["key"]][1] != "describe"]
    hits = [r["text"].strip().lower().rstrip(".") == truth["synthetic"][r["key"]][0] for r in synthetic]
    got[("synthetic", "accuracy")] = 100 * sum(hits) / len(hits)
    return got


def test_mqt_eval_sweep_writes_everything_and_resumes(eval_data, tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    root, truth = eval_data
    out = tmp_path / "out"
    args = ["eval", "--model", str(tiny_model_dir), "--benchmarks", BENCHMARKS, "--budgets", ",".join(map(str, BUDGETS)),
            "--data-root", str(root), "--out", str(out), "--batch-size", "8", "--max-new-tokens", "4",
            "--baseline", "paper", "--no-progress", "--device", "cpu"]
    run_cli(args)

    # one predictions file per (benchmark, budget), one line per question, the budget on every line
    for benchmark, count in (("pope", 6), ("mme", 8), ("gqa", 4), ("scienceqa", 3), ("mmbench", 5), ("textvqa", 3),
                             ("vqav2", 3), ("synthetic", len(truth["synthetic"]))):
        for budget in BUDGETS:
            lines = predictions(out, benchmark, budget)
            assert len(lines) == count and {r["budget"] for r in lines} == {budget}
            assert all(isinstance(r["text"], str) and r["text_tokens"] > 20 for r in lines)

    with (out / "results.csv").open() as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["benchmark", "metric", "budget", "score", "tflops", "seconds"]
        rows = {(r["benchmark"], r["metric"], int(r["budget"])): r for r in reader}
    for budget in BUDGETS:
        for key, value in hand_metrics(out, truth, budget).items():
            assert float(rows[(*key, budget)]["score"]) == pytest.approx(value, abs=1e-3), (key, budget)
        assert float(rows[("gqa", "accuracy", budget)]["tflops"]) > 0
        assert ("average", "partial_avg", budget) in rows
        assert ("synthetic", "describe_cell", budget) in rows  # descriptions scored per cell, apart from accuracy
    # more visual tokens cost more FLOPs
    assert float(rows[("pope", "f1", 16)]["tflops"]) > float(rows[("pope", "f1", 2)]["tflops"])

    table = (out / "results.md").read_text()
    assert "| benchmark | 2 | 4 | 8 | 16 | 36 | 64 | 144 | 256 | 576 |" in table
    assert "| POPE (MQT-LLaVA-7B) | 74.5 |" in table and "| MME-P |" in table and "| Synthetic |" in table
    assert "not all 11" in table and "VQAv2 has no public answers" in table
    for plot in ("scores_vs_budget.png", "average.png"):
        assert (out / "plots" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == set(BENCHMARKS.split(","))
    assert (out / "submissions" / "vqav2" / "m016" / "vqav2_test-dev2015_upload.json").is_file()

    # rerun: every prediction is on disk, so the model must not be asked anything
    before = {p: p.read_bytes() for p in (out / "predictions").rglob("*.jsonl")}

    def refuse(*args, **kwargs):
        raise AssertionError("the rerun generated again")

    monkeypatch.setattr("mqt_vlm.eval.generator.ModelGenerator.__call__", refuse)
    monkeypatch.setattr("mqt_vlm.eval.generator.ModelGenerator.prepare", refuse)  # no image encoded either
    run_cli(args)
    assert {p: p.read_bytes() for p in (out / "predictions").rglob("*.jsonl")} == before
    with (out / "results.csv").open() as handle:
        again = {(r["benchmark"], r["metric"], int(r["budget"])): r["score"] for r in csv.DictReader(handle)}
    assert again == {k: r["score"] for k, r in rows.items()}


def test_cli_errors_are_clear(eval_data, tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    root, _ = eval_data
    base = ["eval", "--model", str(tiny_model_dir), "--data-root", str(root), "--out", str(tmp_path / "o"), "--no-progress"]
    with pytest.raises(SystemExit) as exit_info:
        main([*base, "--benchmarks", "pope,vqa3"])
    assert exit_info.value.code == 2
    assert "Unknown benchmark 'vqa3'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([*base, "--benchmarks", "gqa", "--budgets", "2,lots"])
    assert exit_info.value.code == 2 and "--budgets" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([*base, "--benchmarks", "gqa", "--budgets", "2,64"])  # the tiny model has M = 16
    assert exit_info.value.code == 2 and "1..16" in capsys.readouterr().err
