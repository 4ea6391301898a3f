"""A tiny model overfits a few real-photo samples: the whole loop (data, budgets, loss, optimizer,
checkpoint, export) actually learns. Runs in-process, single process."""

from __future__ import annotations

import json
from pathlib import Path

from mqt_vlm.train.config import load_config
from mqt_vlm.train.metrics import read_log
from mqt_vlm.train.trainer import run_training

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_loss_falls_well_below_its_start(photos: Path, tmp_path: Path, cache_dir: Path, one_thread: None) -> None:
    few = json.loads((photos / "conversations.json").read_text())[:3]
    few.append(json.loads((photos / "conversations.json").read_text())[-1])  # one text-only record too
    data = tmp_path / "few.json"
    data.write_text(json.dumps(few))
    config = load_config(CONFIGS / "stage1-tiny.yaml").with_overrides({
        "data.path": str(data),
        "data.image_folder": str(photos / "images"),
        "data.template": "vicuna_v1",
        "data.max_length": 256,
        "data.num_workers": 0,
        "trainable.language_model": "full",
        "budget.sampler": "even:2-16",
        "budget.per_step": 2,
        "optim.global_batch_size": 4,
        "optim.micro_batch_size": 4,
        "optim.learning_rate": 2e-2,
        "runtime.max_steps": 12,
        "runtime.save_every": 1000,
    })
    final = run_training(config, tmp_path / "run")
    steps, events = read_log(tmp_path / "run")
    first, last = steps[1]["loss"], min(steps[s]["loss"] for s in (11, 12))
    assert last < 0.4 * first, (first, last)
    assert all(len(steps[s]["m"]) == 2 and len(set(steps[s]["m"])) == 2 for s in steps)  # K = 2 distinct budgets
    assert all(set(steps[s]["loss_by_m"]) == {str(m) for m in steps[s]["m"]} for s in steps)
    assert events[-1]["event"] == "end" and (final / "model.safetensors").is_file()
    assert (tmp_path / "run" / "checkpoints" / "step-00000012" / "trainer_state.json").is_file()
