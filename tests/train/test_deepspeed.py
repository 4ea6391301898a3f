"""DeepSpeed ZeRO-2 and ZeRO-3 on two CPU processes match the DDP run's losses.

Opt-in (MQT_TEST_DEEPSPEED=1, with `pip install deepspeed==0.19.8`): the first run compiles
DeepSpeed's CPU communication op (a minute or two), which the default test budget cannot afford.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("MQT_TEST_DEEPSPEED") != "1", reason="set MQT_TEST_DEEPSPEED=1 to run"),
]


def _losses(config: str, out: Path, photos: Path) -> tuple[list[float], str]:
    pytest.importorskip("deepspeed")
    command = [
        str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file", str(CONFIGS / "accelerate" / config),
        "-m", "mqt_vlm.train", str(CONFIGS / "stage1-tiny.yaml"), str(out), "--data", str(photos / "captions.json"),
        "--image-folder", str(photos / "images"), "--max-steps", "3", "--budget", "even:2-16", "--learning-rate", "0.01",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    start = next(line for line in lines if line.get("event") == "start")
    return [line["loss"] for line in lines if "event" not in line], start["distributed"]


def test_zero2_and_zero3_match_ddp(tmp_path: Path, photos: Path, cache_dir: Path) -> None:
    ddp, kind = _losses("cpu-2proc.yaml", tmp_path / "ddp", photos)
    assert kind.endswith("MULTI_CPU")
    for config in ("cpu-zero2.yaml", "cpu-zero3.yaml"):
        losses, kind = _losses(config, tmp_path / config, photos)
        assert kind.endswith("DEEPSPEED")
        assert losses == pytest.approx(ddp, rel=1e-3)
        assert (tmp_path / config / "final" / "model.safetensors").is_file()
