"""Helpers for the tests that train through `accelerate launch` (DDP, FSDP, DeepSpeed): start a run,
kill it with SIGKILL once its first checkpoint is published, read its log, and compare a resumed
run with an uninterrupted one step by step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mqt_vlm.train.budgets import parse_budget_sampler
from mqt_vlm.train.checkpoint import list_checkpoints

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def launch_command(accelerate_config: str) -> list[str]:
    """`accelerate launch --config_file configs/accelerate/NAME -m mqt_vlm.train` of this interpreter's venv."""
    accelerate = str(Path(sys.executable).parent / "accelerate")
    return [accelerate, "launch", "--config_file", str(CONFIGS / "accelerate" / accelerate_config), "-m", "mqt_vlm.train"]


def read_log(folder: Path) -> list[dict]:
    """All JSONL lines; a line cut by the kill is skipped (the logger starts a fresh line on resume)."""
    lines = []
    for text in (folder / "train_log.jsonl").read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            continue
    return lines


def steps(lines: list[dict]) -> dict[int, dict]:
    return {line["step"]: line for line in lines if "event" not in line}


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the launcher and every worker it started (workers do not share its process group)."""
    try:
        family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for member in family:
        try:
            member.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    process.wait(timeout=60)


def run_launch(accelerate_config: str, args: list[str], log: Path, timeout: float = 400) -> None:
    with open(log, "w") as handle:
        result = subprocess.run(launch_command(accelerate_config) + args, stdout=handle, stderr=subprocess.STDOUT,
                                timeout=timeout, env=os.environ.copy())
    assert result.returncode == 0, log.read_text()[-4000:]


def run_killed_after_checkpoint(accelerate_config: str, args: list[str], output_dir: Path, log: Path, timeout: float = 400) -> list[dict]:
    """Start the run, SIGKILL every process as soon as a checkpoint is published; returns its log lines."""
    with open(log, "w") as handle:
        process = subprocess.Popen(launch_command(accelerate_config) + args, stdout=handle, stderr=subprocess.STDOUT, env=os.environ.copy())
    deadline = time.monotonic() + timeout
    while not list_checkpoints(output_dir) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    kill_tree(process)
    assert list_checkpoints(output_dir), "no checkpoint before the kill:\n" + log.read_text()[-4000:]
    killed = read_log(output_dir)
    assert not (output_dir / "final").exists() and not any(line.get("event") == "end" for line in killed), "the run finished before the kill"
    return killed


def check_resumed_like_uninterrupted(killed: list[dict], lines: list[dict], expected: dict[int, dict], total_steps: int,
                                     sampler: str, seed: int, world: int, rel: float) -> int:
    """The killed-then-resumed run repeats the uninterrupted run step for step: the same budgets on
    every rank (those of (seed, step)), the losses within `rel` (0: bit for bit), the same learning
    rates; steps the killed run did after its checkpoint repeat exactly. Returns the resumed step."""
    resume = next(line for line in lines if line.get("event") == "resume")
    resumed_from = resume["step"]
    assert 0 < resumed_from < total_steps
    resumed = steps(lines[lines.index(resume) :])
    assert sorted(resumed) == list(range(resumed_from + 1, total_steps + 1))  # the step counter continues
    budgets = parse_budget_sampler(sampler)
    for step in range(1, total_steps + 1):
        record = resumed.get(step) or steps(killed)[step]
        assert record["m"] == expected[step]["m"] == budgets.draw(seed, step - 1), step
        assert record["m_by_rank"] == [record["m"]] * world
        if rel == 0:
            assert record["loss"] == expected[step]["loss"], step
        else:
            assert record["loss"] == pytest.approx(expected[step]["loss"], rel=rel, abs=1e-5), step
        assert record["lr"] == pytest.approx(expected[step]["lr"], rel=1e-6)
    for step, record in steps(killed).items():
        if step > resumed_from:
            assert record["loss"] == resumed[step]["loss"]
    return resumed_from


def stage2_args(out: Path, init: Path, photos: Path, steps: int, save_every: int = 2, data: str = "conversations.json") -> list[str]:
    """`mqt train` arguments of the tiny stage 2 on the real-photo conversations (`photos/data`, images
    in `photos/images`), from `init` (DataLoader workers off: they only cost start-up time here)."""
    return [str(CONFIGS / "stage2-tiny.yaml"), str(out), "--init-from", str(init), "--data", str(photos / data),
            "--image-folder", str(photos / "images"), "--max-steps", str(steps), "--save-every", str(save_every), "--num-workers", "0"]


def train_stage2_in_process(out: Path, init: Path, photos: Path, steps: int, data: str = "conversations.json") -> Path:
    """The same stage 2 uninterrupted in this process (one rank, so 2 accumulation slots for the global
    batch of 4): the run a multi-process run must reproduce. Returns `out`."""
    import torch

    from mqt_vlm.train.config import load_config
    from mqt_vlm.train.trainer import run_training

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = load_config(CONFIGS / "stage2-tiny.yaml").with_overrides({
            "model.pretrained": str(init), "data.path": str(photos / data),
            "data.image_folder": str(photos / "images"), "runtime.max_steps": steps, "runtime.save_every": 1000,
            "data.num_workers": 0,
        })
        run_training(config, out)
    finally:
        torch.set_num_threads(previous)
    return out
