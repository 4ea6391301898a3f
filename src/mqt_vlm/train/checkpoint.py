"""Checkpoints that survive `kill -9`: written to a temporary folder, then renamed into place.

Layout: `OUTPUT/checkpoints/step-00000120/` holds what `Accelerator.save_state` writes (model,
optimizer, scheduler, per-rank RNG states; DeepSpeed/FSDP shards when those are used) plus
`trainer_state.json` (step, epoch, data position, counters, data fingerprint). The folder is built
as `.tmp-step-00000120`, fsynced, and renamed by the main process only after every rank has written
its part; a rename is atomic, so a `step-*` folder is always complete and a killed save leaves only
a `.tmp-*` folder that resume ignores and the next save removes. All ranks must see the same
filesystem (one node, or a shared filesystem across nodes).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mqt_vlm.errors import MQTError

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^step-(\d{8})$")


@dataclass
class TrainerState:
    """Where training stands after `step` optimizer steps; the data position is (epoch, step_in_epoch)."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    samples_seen: int = 0
    tokens_seen: int = 0
    skipped_samples: int = 0
    data_fingerprint: str = ""
    last_budgets: list[int] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainerState":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first (temporary folders and stray files are ignored)."""
    root = Path(output_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _NAME.match(child.name)
        if match and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def _fsync_tree(folder: Path) -> None:
    """Flush file contents and directory entries, so a rename never publishes unwritten data."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    for directory in [folder, *[p for p in folder.rglob("*") if p.is_dir()]]:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_checkpoint(accelerator: Any, output_dir: Path, state: TrainerState, keep: int) -> Path:
    """Write a checkpoint for `state.step` collectively (every rank calls this); returns its folder."""
    root = Path(output_dir) / CHECKPOINTS
    final = root / checkpoint_name(state.step)
    temporary = root / f".tmp-{checkpoint_name(state.step)}"
    accelerator.wait_for_everyone()
    if final.exists():  # already saved at this step (e.g. a periodic save at the last step)
        return final
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-*"):  # left behind by a killed save
            shutil.rmtree(stale, ignore_errors=True)
        temporary.mkdir()
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()  # every rank's shards and RNG state are on disk
    if accelerator.is_main_process:
        (temporary / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))
        _fsync_tree(temporary)
        os.replace(temporary, final)
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        for _, old in list_checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Any, folder: Path) -> TrainerState:
    """Restore model, optimizer, scheduler and RNG states from `folder`; return the trainer state."""
    folder = Path(folder)
    state_file = folder / STATE_FILE
    if not state_file.is_file():
        raise MQTError(f"{folder} is not a complete checkpoint (no {STATE_FILE}).")
    accelerator.load_state(str(folder))
    return TrainerState.from_dict(json.loads(state_file.read_text()))
