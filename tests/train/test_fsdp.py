"""FSDP2 (Accelerate's FSDP plugin, full sharding, sharded DCP checkpoints) on two CPU processes over
gloo, through `accelerate launch --config_file configs/accelerate/cpu-fsdp.yaml`: stage 2 of the tiny
model is killed with SIGKILL after its first checkpoint and resumed; the losses, budgets and learning
rates equal an uninterrupted single-process run's (2 accumulation slots instead of 2 ranks: the same
global batch), both ranks end with the same gathered weights, and the export loads with the strict
loader and holds the uninterrupted run's weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from launched_runs import check_resumed_like_uninterrupted, read_log, run_killed_after_checkpoint, run_launch, stage2_args, steps
from launched_runs import train_stage2_in_process
from mqt_vlm.train.checkpoint import list_checkpoints

STEPS = 4
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory: pytest.TempPathFactory, tiny_folder: Path, photos: Path) -> dict:
    root = tmp_path_factory.mktemp("fsdp")
    out = root / "stage2"
    args = stage2_args(out, tiny_folder, photos, STEPS)
    killed = run_killed_after_checkpoint("cpu-fsdp.yaml", args, out, root / "killed.log")
    checkpoint = list_checkpoints(out)[0][1]
    shards = sorted(path.relative_to(checkpoint).as_posix() for path in checkpoint.rglob("*.distcp"))
    run_launch("cpu-fsdp.yaml", args + ["--resume"], root / "resumed.log")
    return {"out": out, "killed": killed, "shards": shards}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tiny_folder: Path, photos: Path) -> Path:
    return train_stage2_in_process(tmp_path_factory.mktemp("reference"), tiny_folder, photos, STEPS)


def test_fsdp_kill_and_resume_continues_exactly(fsdp_run: dict, reference: Path) -> None:
    lines = read_log(fsdp_run["out"])
    start = next(line for line in lines if line.get("event") == "start")
    assert start["world_size"] == 2 and start["accumulation_steps"] == 1 and start["distributed"].endswith("FSDP")
    # the checkpoint holds each rank's shards of the weights and of the optimizer state (DCP), not a replica
    assert fsdp_run["shards"] == ["optimizer_0/__0_0.distcp", "optimizer_0/__1_0.distcp",
                                  "pytorch_model_fsdp_0/__0_0.distcp", "pytorch_model_fsdp_0/__1_0.distcp"]
    resumed_from = check_resumed_like_uninterrupted(fsdp_run["killed"], lines, steps(read_log(reference)), STEPS,
                                                    "even:2-16", 42, world=2, rel=1e-4)
    assert resumed_from == 2
    end = [line for line in lines if line.get("event") == "end"][-1]
    assert len(end["weight_digests"]) == 2 and len(set(end["weight_digests"])) == 1  # the gathered weights agree


def test_fsdp_export_loads_strictly_with_the_uninterrupted_weights(fsdp_run: dict, reference: Path, tiny_folder: Path) -> None:
    from safetensors.torch import load_file

    from mqt_vlm.loading import load_model

    model, _ = load_model(fsdp_run["out"] / "final")  # strict: every tensor present, none unexpected
    state = model.state_dict()
    want, before = load_file(reference / "final" / "model.safetensors"), load_file(tiny_folder / "model.safetensors")
    assert set(load_file(fsdp_run["out"] / "final" / "model.safetensors")) == set(want)
    for name, value in want.items():
        torch.testing.assert_close(state[name], value, rtol=1e-4, atol=1e-5, msg=name)
    assert not torch.equal(state["mqt.query"], before["mqt.query"])  # trained
    torch.testing.assert_close(state["mqt.pos_embed"], before["mqt.pos_embed"], rtol=0, atol=0)  # frozen in stage 2
