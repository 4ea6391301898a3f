"""Observability for the main process: a JSONL line per step, a progress bar, optional TensorBoard.

`train_log.jsonl` is the record of a run: one line per optimizer step (loss, budgets, lr, grad
norm, tokens, time) and event lines (`start`, `resume`, `data`, `checkpoint`, `end`). A resumed run
appends; steps it repeats after a kill appear twice, and the later line is the one that counts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

LOG_FILE = "train_log.jsonl"


def _ends_mid_line(path: Path) -> bool:
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) != b"\n"


class StepLogger:
    """Writes on the main process only; other ranks get a no-op logger."""

    def __init__(self, output_dir: Path, enabled: bool, total_steps: int, start_step: int, tensorboard: bool = False) -> None:
        self.enabled = enabled
        self.path = Path(output_dir) / LOG_FILE
        if enabled and _ends_mid_line(self.path):
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write("\n")  # a kill cut the last line short; never glue a new line onto it
        self._handle = open(self.path, "a", encoding="utf-8") if enabled else None
        self._bar = tqdm(total=total_steps, initial=start_step, desc="train", dynamic_ncols=True) if enabled else None
        self._writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ImportError("runtime.tensorboard needs the tensorboard package: pip install tensorboard") from exc
            self._writer = SummaryWriter(str(Path(output_dir) / "tensorboard"))

    def _write(self, record: dict[str, Any]) -> None:
        if self._handle is not None:
            self._handle.write(json.dumps(record) + "\n")
            self._handle.flush()

    def event(self, name: str, **fields: Any) -> None:
        self._write({"event": name, "time": time.time(), **fields})
        if self._bar is not None and name not in ("start",):
            self._bar.write(f"[{name}] " + ", ".join(f"{k}={v}" for k, v in fields.items() if not isinstance(v, (list, dict))))

    def step(self, record: dict[str, Any]) -> None:
        self._write(record)
        if self._bar is not None:
            budgets = record["m"]
            self._bar.set_postfix(
                loss=f"{record['loss']:.4f}",
                m=budgets[0] if len(budgets) == 1 else budgets,
                tok_s=f"{record['tokens_per_s']:.0f}",
                refresh=False,
            )
            self._bar.update(1)
        if self._writer is not None:
            step = record["step"]
            for key in ("loss", "lr", "grad_norm", "tokens_per_s", "samples_per_s"):
                if record.get(key) is not None:
                    self._writer.add_scalar(f"train/{key}", record[key], step)
            for m, value in record.get("loss_by_m", {}).items():
                self._writer.add_scalar(f"train/loss_m{m}", value, step)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._writer is not None:
            self._writer.close()
        if self._handle is not None:
            self._handle.close()


def read_log(output_dir: Path) -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]]]:
    """(last record per step, events) from a run's JSONL log; used by tests and analysis."""
    steps: dict[int, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    for line in (Path(output_dir) / LOG_FILE).read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # cut short by a kill
            continue
        if "event" in record:
            events.append(record)
        else:
            steps[record["step"]] = record
    return steps, events
