"""Running one training stage of the reproduction as its own process, resumably."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mqt_vlm.errors import MQTError


def log(message: str) -> None:
    print(f"[reproduce {time.strftime('%H:%M:%S')}] {message}", flush=True)


def configs_dir() -> Path:
    """`configs/repro` of the source checkout (stages are configs, not code paths)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "configs" / "repro").is_dir():
            return parent / "configs" / "repro"
    raise MQTError("configs/repro not found; run the reproduction from a source checkout.")


def run_stage(config_name: str, out: Path, overrides: dict[str, Any], log_file: Path) -> Path:
    """Train one stage (`python -m mqt_vlm.train`, a clean Accelerate state per run); returns out/final.

    Skipped when out/final exists; resumed from the last checkpoint when one exists, so a killed
    reproduction continues where it stopped, with the same losses and budgets.
    """
    from mqt_vlm.train.config import load_config

    final = out / "final"
    if (final / "config.json").is_file():
        return final
    settings = load_config(configs_dir() / config_name).with_overrides(overrides)
    out.mkdir(parents=True, exist_ok=True)
    resolved = out / "resolved_config.json"
    resolved.write_text(json.dumps(settings.to_dict(), indent=2, default=str))
    command = [sys.executable, "-m", "mqt_vlm.train", str(resolved), str(out)]
    if (out / "checkpoints").is_dir() and any(p.name.startswith("step-") for p in (out / "checkpoints").iterdir()):
        command.append("--resume")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0 or not (final / "config.json").is_file():
        raise MQTError(f"Training failed ({' '.join(command)}); see {log_file}.")
    return final
