"""The shipped default model `builtin:shapes`: it loads, answers at every budget, and beats chance
on a freshly generated test split (a seed the training data never used)."""

from __future__ import annotations

import pytest

from mqt_vlm.errors import MQTError
from mqt_vlm.loading import builtin_dir, load_model


def _available() -> bool:
    try:
        builtin_dir("shapes")
        return True
    except MQTError:
        return False


pytestmark = pytest.mark.skipif(not _available(), reason="builtin:shapes is not shipped in this build")


def test_builtin_beats_chance_at_every_budget(tmp_path):
    from mqt_vlm.data.synthetic import SynthConfig, write_dataset
    from mqt_vlm.eval.benchmarks import get_benchmark
    from mqt_vlm.eval.generator import ModelGenerator
    from mqt_vlm.eval.sweep import SweepConfig, run_sweep

    model, processor = load_model("builtin:shapes")
    write_dataset(tmp_path / "data", SynthConfig(seed=987654, n_images=120), progress=False)
    budgets = sorted({2, 8, model.num_queries})
    config = SweepConfig(benchmarks=[get_benchmark("synthetic")], budgets=budgets, data_root=tmp_path / "data",
                         out=tmp_path / "eval", model="builtin:shapes", batch_size=64, max_new_tokens=4,
                         progress=False, plots=False)
    result = run_sweep(config, ModelGenerator(model, processor), echo=lambda _: None)
    accuracy = {r.budget: r.score for r in result.rows if r.metric == "accuracy"}
    yes_no = {r.budget: r.score for r in result.rows if r.metric == "accuracy_global"}
    # chance: 1 of the ~19 answers overall; 50% on the balanced yes/no questions
    for m in budgets:
        assert accuracy[m] > 100 / 19 + 10, accuracy
        assert yes_no[m] > 55, yes_no


def test_builtin_is_accepted_wherever_a_model_is(tmp_path):
    from typer.testing import CliRunner

    from mqt_vlm.cli.main import build_app

    result = CliRunner().invoke(build_app(), ["demo", "--scenes", "1", "--budgets", "2,M"])
    assert result.exit_code == 0, result.output
    assert "builtin:shapes" in result.output and "correct by budget" in result.output
