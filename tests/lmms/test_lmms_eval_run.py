"""A real lmms-eval run of the shipped model on the synthetic benchmark (`make test-lmms`).

Skipped unless lmms-eval is importable (it lives in its own venv, .venv-lmms, see the Makefile).
One `lmms-eval --config` process evaluates a generation group and a multiple-choice group at two
budgets; lmms-eval exits 0 even when a task fails, so everything is checked from the files it
wrote: the results JSON (scores, the budget, sample counts) and the per-sample logs. The scores
must equal `mqt eval --benchmarks synthetic` on the same questions (same model, budget and limit);
`mqt eval` has no multiple-choice mode, so the multiple-choice answers are checked against a direct
computation of each choice's log-likelihood with the model's forward on `pixel_values`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lmms_eval")

from mqt_vlm.eval.lmms_tasks import TASKS_DIR  # noqa: E402

MODEL = "builtin:shapes"
BUDGETS = (8, 32)  # builtin:shapes is trained at 32; 8 visibly loses the describe task
LIMIT = 6  # per question type, in both harnesses
BATCH = 4
TYPES = ("global", "count", "cell", "relation")
BIN = Path(sys.executable).parent


def _run(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=900)
    log.write_text(done.stdout, encoding="utf-8")
    assert done.returncode == 0, f"{command[0]} failed ({done.returncode}); see {log}\n{done.stdout[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("lmms")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_DATASETS_CACHE": str(root / "hf-datasets"), "HF_HOME": str(root / "hf-home")}
    _run([str(BIN / "mqt"), "data", "synth", "synthetic", "--n", "200", "--parquet"], root, env, root / "synth.log")
    sweep = [{"model": "mqt_vlm", "model_args": f"pretrained={MODEL},num_visual_tokens={m}",
              "tasks": "mqt_synthetic,mqt_synthetic_mc", "include_path": str(TASKS_DIR), "batch_size": BATCH,
              "limit": LIMIT, "log_samples": True, "output_path": str(root / "lmms" / f"m{m}")} for m in BUDGETS]
    (root / "sweep.yaml").write_text(json.dumps(sweep), encoding="utf-8")  # JSON is YAML
    lmms_log = _run([str(BIN / "lmms-eval"), "--config", "sweep.yaml"], root, env, root / "lmms.log")
    _run([str(BIN / "mqt"), "eval", "--model", MODEL, "--benchmarks", "synthetic",
          "--budgets", ",".join(map(str, BUDGETS)), "--data-root", ".", "--out", "mqt-eval", "--limit", str(LIMIT),
          "--batch-size", str(BATCH), "--no-progress"], root, env, root / "mqt-eval.log")
    return {"root": root, "lmms_log": lmms_log,
            "mqt": json.loads((root / "mqt-eval" / "metrics.json").read_text())["synthetic"]["budgets"]}


def _results(root: Path, m: int) -> tuple[dict[str, Any], Path]:
    found = sorted((root / "lmms" / f"m{m}").glob("*/*_results.json"))
    assert len(found) == 1, f"lmms-eval wrote no results JSON for m={m} (it exits 0 on errors): {found}"
    return json.loads(found[0].read_text()), found[0].parent


def _questions(root: Path, kind: str) -> list[dict[str, Any]]:
    """The split's questions of one type in file order: lmms-eval's doc_id indexes these."""
    name = "test_describe.jsonl" if kind == "describe" else "test_questions.jsonl"
    lines = (root / "synthetic" / name).read_text().splitlines()
    return [q for q in map(json.loads, lines) if q["question_type"] == kind]


def _samples(folder: Path, task: str) -> list[dict[str, Any]]:
    (path,) = folder.glob(f"*_samples_{task}.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_lmms_eval_ran_cleanly(runs: dict[str, Any]) -> None:
    assert "Error during evaluation" not in runs["lmms_log"] and "Traceback" not in runs["lmms_log"]
    assert "mqt_vlm: builtin:shapes at num_visual_tokens=8 (of M=32)" in runs["lmms_log"]


@pytest.mark.parametrize("m", BUDGETS)
def test_results_json_reports_the_budget_and_every_task(runs: dict[str, Any], m: int) -> None:
    results, _ = _results(runs["root"], m)
    assert results["config"]["model"] == "mqt_vlm"
    assert f"num_visual_tokens={m}" in results["config"]["model_args"]
    assert results["throughput"]["avg_num_visual_tokens"] == m
    assert results["throughput"]["avg_max_visual_tokens"] == 32
    tasks = [f"mqt_synthetic_{t}" for t in (*TYPES, "describe")] + [f"mqt_synthetic_mc_{t}" for t in TYPES]
    for task in tasks:
        assert results["n-samples"][task]["effective"] == LIMIT, task
    assert set(results["group_subtasks"]["mqt_synthetic_mc"]) == {f"mqt_synthetic_mc_{t}" for t in TYPES}


@pytest.mark.parametrize("m", BUDGETS)
def test_generation_scores_equal_mqt_eval(runs: dict[str, Any], m: int) -> None:
    results, folder = _results(runs["root"], m)
    ours = runs["mqt"][str(m)]["metrics"]
    assert ours["total"] == LIMIT * len(TYPES)
    for kind in TYPES:
        assert results["results"][f"mqt_synthetic_{kind}"]["accuracy,none"] == pytest.approx(ours["question_type"][kind], abs=1e-12)
    assert results["results"]["mqt_synthetic"]["accuracy,none"] == pytest.approx(ours["accuracy"], abs=1e-12)
    assert results["results"]["mqt_synthetic"]["describe_cell,none"] == pytest.approx(ours["describe_cell"], abs=1e-12)
    # answer by answer: the texts lmms-eval logged are the ones `mqt eval` wrote
    predictions = [json.loads(line) for path in (runs["root"] / "mqt-eval" / "predictions" / "synthetic").glob("*.jsonl")
                   for line in path.read_text().splitlines()]
    by_question = {p["question_id"]: p["text"] for p in predictions if p["budget"] == m}
    assert len(by_question) == LIMIT * (len(TYPES) + 1)
    for kind in (*TYPES, "describe"):
        chosen = _questions(runs["root"], kind)
        samples = _samples(folder, f"mqt_synthetic_{kind}")
        assert sorted(s["doc_id"] for s in samples) == list(range(LIMIT))
        for sample in samples:
            question = chosen[sample["doc_id"]]
            assert sample["input"] == question["text"]
            assert sample["filtered_resps"] == by_question[question["question_id"]], (kind, question["question_id"])
            assert sample["token_counts"][0]["input_tokens"] > m  # the m visual tokens are counted


def _choice_nll(model: Any, processor: Any, image: Any, question: str, choice: str, m: int) -> float:
    """-log p(" choice" | prompt), computed independently of the plugin (pixel_values, one row)."""
    import torch

    prompt = processor.format_prompt(question)
    context = processor(images=[image], text=[prompt], num_visual_tokens=m)
    full = processor(images=[image], text=[prompt + " " + choice], num_visual_tokens=m)
    n = context["input_ids"].shape[1]
    assert torch.equal(full["input_ids"][0, :n], context["input_ids"][0])
    with torch.inference_mode():
        logits = model(**full, num_visual_tokens=m).logits[0].float()
    targets = full["input_ids"][0, n:]
    return -float(torch.log_softmax(logits[n - 1:-1], dim=-1).gather(1, targets[:, None]).sum())


@pytest.mark.parametrize("m", BUDGETS)
def test_multiple_choice_matches_direct_loglikelihoods(runs: dict[str, Any], m: int) -> None:
    from mqt_vlm.loading import load_model
    from mqt_vlm.processing.images import load_image

    model, processor = load_model(MODEL, device="cpu")
    root = runs["root"] / "synthetic"
    choices_of = json.loads((root / "meta.json").read_text())["answers_by_type"]
    results, folder = _results(runs["root"], m)
    right_total = 0
    for kind in TYPES:
        chosen = _questions(runs["root"], kind)
        samples = sorted(_samples(folder, f"mqt_synthetic_mc_{kind}"), key=lambda s: s["doc_id"])
        assert [s["doc_id"] for s in samples] == list(range(LIMIT))
        right = 0
        for sample in samples:
            question = chosen[sample["doc_id"]]
            assert sample["input"] == question["text"]
            image = load_image(root / question["image"])
            choices = choices_of[kind]
            reference = [_choice_nll(model, processor, image, question["text"], c, m) for c in choices]
            logged = [float(nll) for nll, _ in sample["filtered_resps"]]
            assert logged == pytest.approx(reference, abs=1e-4), question["question_id"]
            hit = choices[min(range(len(choices)), key=reference.__getitem__)] == question["answer"]
            assert sample["acc"] == float(hit)
            right += int(hit)
        assert results["results"][f"mqt_synthetic_mc_{kind}"]["acc,none"] == pytest.approx(right / LIMIT, abs=1e-12)
        right_total += right
    assert results["results"]["mqt_synthetic_mc"]["acc,none"] == pytest.approx(right_total / (LIMIT * len(TYPES)), abs=1e-12)
    assert not math.isnan(results["results"]["mqt_synthetic_mc"]["acc,none"])
