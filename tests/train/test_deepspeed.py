"""DeepSpeed ZeRO-2 and ZeRO-3 on two CPU processes through `accelerate launch` (configs/accelerate/
cpu-zero2.yaml, cpu-zero3.yaml), stage 2 of the tiny model (LLM + query transformer trained):

- on image conversations, ZeRO-3 reproduces an uninterrupted single-process run (losses, budgets,
  learning rates, exported weights; 2 accumulation slots instead of 2 ranks);
- on the mixed data (text-only steps, where the query transformer gets no gradient), ZeRO-2 and
  ZeRO-3 agree: both give it a zero gradient (AdamW's momentum still moves it, unlike torch's AdamW
  under DDP/FSDP, which skips a parameter without a gradient), and ZeRO-3 does not re-apply its
  previous gradient (`train.step.forget_zero3_gradients`);
- ZeRO-3 killed with SIGKILL after its first checkpoint, just before a text-only step, and resumed
  repeats the uninterrupted ZeRO-3 run bit for bit;
- every export is gathered from the shards and loads with the strict loader.

Opt-in: `make test-deepspeed` builds .venv-deepspeed (the deepspeed extra) and runs this file with
MQT_TEST_DEEPSPEED=1. The first run compiles DeepSpeed's CPU communication op (about a minute), which
the default test budget cannot afford.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from launched_runs import check_resumed_like_uninterrupted, read_log, run_killed_after_checkpoint, run_launch, stage2_args, steps
from launched_runs import train_stage2_in_process
from mqt_vlm.train.checkpoint import list_checkpoints

STEPS = 4
IMAGES_ONLY = "conversations-images.json"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("MQT_TEST_DEEPSPEED") != "1", reason="make test-deepspeed (MQT_TEST_DEEPSPEED=1) runs it"),
]


@pytest.fixture(scope="module", autouse=True)
def deepspeed_installed() -> None:
    """Asked for and missing is a failure, not a skip: the target must not pass without running."""
    try:
        import deepspeed  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"MQT_TEST_DEEPSPEED=1 but deepspeed does not import ({exc}); run `make test-deepspeed`.")


@pytest.fixture(scope="module")
def data(photos: Path) -> Path:
    """The photo dataset plus an image-only copy of its conversations (no text-only step)."""
    records = json.loads((photos / "conversations.json").read_text())
    assert any("image" not in r for r in records)  # the mixed data does have text-only records
    (photos / IMAGES_ONLY).write_text(json.dumps([r for r in records if "image" in r]))
    return photos


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tiny_folder: Path, data: Path) -> Path:
    return train_stage2_in_process(tmp_path_factory.mktemp("reference"), tiny_folder, data, STEPS, data=IMAGES_ONLY)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_folder: Path, data: Path) -> dict:
    root = tmp_path_factory.mktemp("deepspeed")
    found: dict = {}
    for name, config, extra in [("zero3-images", "cpu-zero3.yaml", {"data": IMAGES_ONLY}),
                                ("zero2", "cpu-zero2.yaml", {"save_every": 1}), ("zero3", "cpu-zero3.yaml", {"save_every": 1})]:
        found[name] = root / name
        run_launch(config, stage2_args(root / name, tiny_folder, data, STEPS, **extra), root / f"{name}.log", timeout=900)
    out = found["zero3-resumed"] = root / "zero3-resumed"
    args = stage2_args(out, tiny_folder, data, STEPS, save_every=1)
    found["killed"] = run_killed_after_checkpoint("cpu-zero3.yaml", args, out, root / "zero3-killed.log", timeout=900)
    checkpoint = list_checkpoints(out)[0][1]
    found["checkpoint_files"] = sorted(p.relative_to(checkpoint).as_posix() for p in checkpoint.rglob("*") if p.is_file())
    run_launch("cpu-zero3.yaml", args + ["--resume"], root / "zero3-resumed.log", timeout=900)
    return found


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    """The export's tensors, read through the strict loader (every tensor present, none unexpected)."""
    from mqt_vlm.loading import load_model

    model, _ = load_model(folder)
    return model.state_dict()


def _assert_close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], atol: float) -> None:
    assert got.keys() == want.keys()
    for name, value in want.items():
        torch.testing.assert_close(got[name], value, rtol=0, atol=atol, msg=name)


def test_zero3_matches_the_single_process_run(runs: dict, reference: Path, tiny_folder: Path) -> None:
    lines = read_log(runs["zero3-images"])
    start = next(line for line in lines if line.get("event") == "start")
    assert start["world_size"] == 2 and start["distributed"].endswith("DEEPSPEED")
    expected, got = steps(read_log(reference)), steps(lines)
    assert sorted(got) == list(range(1, STEPS + 1))
    for step, record in got.items():
        assert record["m"] == expected[step]["m"] and record["m_by_rank"] == [record["m"]] * 2
        assert record["loss"] == pytest.approx(expected[step]["loss"], rel=1e-5)
        assert record["lr"] == pytest.approx(expected[step]["lr"], rel=1e-6)
    weights, initial = _weights(runs["zero3-images"] / "final"), _weights(tiny_folder)
    _assert_close(weights, _weights(reference / "final"), atol=1e-5)
    assert not torch.equal(weights["mqt.query"], initial["mqt.query"])
    torch.testing.assert_close(weights["mqt.pos_embed"], initial["mqt.pos_embed"], rtol=0, atol=0)  # frozen in stage 2


def test_zero2_and_zero3_agree_across_text_only_steps(runs: dict, tiny_folder: Path) -> None:
    zero2, zero3 = steps(read_log(runs["zero2"])), steps(read_log(runs["zero3"]))
    assert any(record["tokens"] < 200 for record in zero3.values())  # a text-only step (no image tokens) is among them
    for step in range(1, STEPS + 1):
        assert zero2[step]["m"] == zero3[step]["m"]
        assert zero2[step]["loss"] == pytest.approx(zero3[step]["loss"], rel=1e-5)
    _assert_close(_weights(runs["zero3"] / "final"), _weights(runs["zero2"] / "final"), atol=1e-5)


def test_zero3_kill_and_resume_repeats_the_uninterrupted_run(runs: dict) -> None:
    # ZeRO-3 checkpoints hold each rank's partition of the weights and of the optimizer state
    files = runs["checkpoint_files"]
    assert {"pytorch_model/zero_pp_rank_0_mp_rank_00_model_states.pt", "pytorch_model/zero_pp_rank_1_mp_rank_00_model_states.pt",
            "pytorch_model/zero_pp_rank_0_mp_rank_00_optim_states.pt", "pytorch_model/zero_pp_rank_1_mp_rank_00_optim_states.pt",
            "random_states_0.pkl", "random_states_1.pkl", "trainer_state.json"} <= set(files), files
    lines = read_log(runs["zero3-resumed"])
    resumed_from = check_resumed_like_uninterrupted(runs["killed"], lines, steps(read_log(runs["zero3"])), STEPS,
                                                    "even:2-16", 42, world=2, rel=0)
    assert resumed_from == 1
    _assert_close(_weights(runs["zero3-resumed"] / "final"), _weights(runs["zero3"] / "final"), atol=0)  # bit for bit
