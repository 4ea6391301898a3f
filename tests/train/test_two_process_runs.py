"""Real two-process CPU training through `accelerate launch`: stage 1, then stage 2 from its output,
killed with SIGKILL after a checkpoint and resumed; compared step by step with an uninterrupted
single-process run (2 accumulation slots instead of 2 ranks: the same global batch). The exported
model must load with `from_pretrained` and generate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from launched_runs import CONFIGS, run_killed_after_checkpoint, run_launch
from launched_runs import read_log as _log
from launched_runs import steps as _steps
from mqt_vlm.train.budgets import parse_budget_sampler
from mqt_vlm.train.checkpoint import list_checkpoints
from mqt_vlm.train.config import load_config
from mqt_vlm.train.trainer import run_training

STAGE2_STEPS = 8
pytestmark = pytest.mark.slow


def _run(args: list[str], log: Path, timeout: float = 400) -> None:
    run_launch("cpu-2proc.yaml", args, log, timeout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, photos: Path, cache_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    images = ["--image-folder", str(photos / "images")]
    stage1 = root / "stage1"
    _run([str(CONFIGS / "stage1-tiny.yaml"), str(stage1), "--data", str(photos / "captions.json"), *images, "--max-steps", "2"], root / "stage1.log")

    stage2 = root / "stage2"
    args = [str(CONFIGS / "stage2-tiny.yaml"), str(stage2), "--init-from", str(stage1 / "final"),
            "--data", str(photos / "conversations.json"), *images, "--max-steps", str(STAGE2_STEPS), "--save-every", "2"]
    killed_log = run_killed_after_checkpoint("cpu-2proc.yaml", args, stage2, root / "stage2-killed.log")
    _run(args + ["--resume"], root / "stage2-resumed.log")
    (root / "killed_log.json").write_text(json.dumps(killed_log))
    return {"root": root, "stage1": stage1, "stage2": stage2}


@pytest.fixture(scope="module")
def reference(runs: dict[str, Path], photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stage 2 uninterrupted, in one process (accumulation 2): the run the resumed one must reproduce."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = load_config(CONFIGS / "stage2-tiny.yaml")
        config.model.pretrained = str(runs["stage1"] / "final")
        config = config.with_overrides({
            "data.path": str(photos / "conversations.json"), "data.image_folder": str(photos / "images"),
            "runtime.max_steps": STAGE2_STEPS, "runtime.save_every": 1000,
        })
        out = tmp_path_factory.mktemp("reference")
        run_training(config, out)
    finally:
        torch.set_num_threads(previous)
    return out


def test_stage1_two_ranks_agree(runs: dict[str, Path]) -> None:
    lines = _log(runs["stage1"])
    start = next(line for line in lines if line.get("event") == "start")
    assert start["world_size"] == 2 and start["accumulation_steps"] == 1 and start["distributed"].endswith("MULTI_CPU")
    assert set(start["trainable"]) == {n for n in start["trainable"] if n.startswith("mqt.")} and "mqt.pos_embed" in start["trainable"]
    steps = _steps(lines)
    assert sorted(steps) == [1, 2]
    assert all(step["m_by_rank"] == [[16], [16]] for step in steps.values())  # stage 1: m = M on both ranks
    end = next(line for line in lines if line.get("event") == "end")
    assert len(end["weight_digests"]) == 2 and len(set(end["weight_digests"])) == 1  # identical final weights


def test_kill_and_resume_continues_exactly(runs: dict[str, Path], reference: Path) -> None:
    killed = json.loads((runs["root"] / "killed_log.json").read_text())
    lines = _log(runs["stage2"])
    resume = next(line for line in lines if line.get("event") == "resume")
    resumed_from = resume["step"]
    assert 2 <= resumed_from < STAGE2_STEPS and resumed_from % 2 == 0  # a complete checkpoint, not a .tmp one
    resumed = _steps(lines[lines.index(resume) :])
    assert sorted(resumed) == list(range(resumed_from + 1, STAGE2_STEPS + 1))  # the step counter continues
    expected = _steps(_log(reference))
    sampler = parse_budget_sampler("even:2-16")
    for step in range(1, STAGE2_STEPS + 1):
        record = resumed.get(step) or _steps(killed)[step]
        assert record["m"] == expected[step]["m"] == sampler.draw(42, step - 1)  # the budget sequence
        assert record["m_by_rank"] == [record["m"], record["m"]]
        assert record["loss"] == pytest.approx(expected[step]["loss"], rel=1e-4, abs=1e-5)
        assert record["lr"] == pytest.approx(expected[step]["lr"], rel=1e-6)
    for step, record in _steps(killed).items():  # steps the killed run did after its checkpoint, repeated
        if step > resumed_from:
            assert record["loss"] == pytest.approx(resumed[step]["loss"], rel=1e-5)
    assert len({line["m"][0] for line in resumed.values()} | {line["m"][0] for line in _steps(killed).values()}) > 1
    end = [line for line in lines if line.get("event") == "end"][-1]
    assert len(set(end["weight_digests"])) == 1
    assert len(list_checkpoints(runs["stage2"])) == 2  # keep_checkpoints


def test_exported_model_loads_and_generates(runs: dict[str, Path], photos: Path) -> None:
    from PIL import Image

    from mqt_vlm import MQTForConditionalGeneration, MQTProcessor

    folder = runs["stage2"] / "final"
    info = json.loads((folder / "mqt_training.json").read_text())
    assert info["stage"] == "stage2" and info["step"] == STAGE2_STEPS
    model = MQTForConditionalGeneration.from_pretrained(folder).eval()
    processor = MQTProcessor.from_pretrained(folder)
    image = Image.open(photos / "images" / "coffee.png")
    for m in (2, 16):
        inputs = processor(images=[image], text=processor.format_prompt("What drink is in the cup?"), num_visual_tokens=m)
        with torch.no_grad():
            out = model.generate(**inputs, num_visual_tokens=m, max_new_tokens=6, do_sample=False)
        assert out.shape[1] > inputs["input_ids"].shape[1]
        assert isinstance(processor.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True), str)
    # stage 2 kept the stage-1 positional embedding (frozen) and changed the rest
    stage1 = MQTForConditionalGeneration.from_pretrained(runs["stage1"] / "final")
    torch.testing.assert_close(model.mqt.pos_embed, stage1.mqt.pos_embed, rtol=0, atol=0)
    assert not torch.equal(model.mqt.query, stage1.mqt.query)
    assert not torch.equal(model.language_model.lm_head.weight, stage1.language_model.lm_head.weight)
    torch.testing.assert_close(model.vision_tower.embeddings.patch_embedding.weight, stage1.vision_tower.embeddings.patch_embedding.weight, rtol=0, atol=0)
