"""Checkpoints that survive `kill -9`: written to a temporary folder, then renamed into place.

Layout: `OUTPUT/checkpoints/step-00000120/` holds what `Accelerator.save_state` writes (model,
optimizer, scheduler, per-rank RNG states; DeepSpeed/FSDP shards when those are used) plus
`trainer_state.json` (step, epoch, data position, counters, data fingerprint, engine layout and
process count). The folder is built as `.tmp-step-00000120`, fsynced, and renamed by the main
process only after every rank has written its part; a rename is atomic, so a `step-*` folder is
always complete and a killed save leaves only a `.tmp-*` folder that resume ignores and the next
save removes. All ranks must see the same filesystem (one node, or a shared filesystem across
nodes).

A save that fails (a full disk, a lost mount) removes its temporary folder and stops the run with
an error naming the path and the free space. Complete is not the same as intact, though: a
checkpoint can be damaged later (a truncated copy, a lost file). `load_newest_intact` checks what
`Accelerator.load_state` would otherwise accept silently (it skips an unreadable RNG state, which
would make the resumed run differ from the uninterrupted one without a word), falls back to the
newest checkpoint every rank can load, says which ones it skipped, and sets them aside as
`damaged-step-*` so that no later save or prune mistakes them for good ones.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mqt_vlm.errors import MQTError

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
DAMAGED_PREFIX = "damaged-"
_NAME = re.compile(r"^step-(\d{8})$")
_RNG_KEYS = ("random_state", "numpy_random_seed", "torch_manual_seed")


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
    layout: str = ""  # the engine that wrote the checkpoint ("ddp", "fsdp-sharded", "deepspeed-zero3", ...)
    world_size: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainerState":
        """The state saved in `trainer_state.json`; a wrong type is an `MQTError` (a damaged file)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key, value in known.items():
            if key in ("data_fingerprint", "layout"):
                ok = isinstance(value, str)
            elif key == "last_budgets":
                ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            else:
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            if not ok:
                raise MQTError(f"{STATE_FILE} has {key}={value!r}, which is not a valid value.")
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


def _failure(exc: BaseException) -> str:
    """Why a write failed, in words; PyTorch's zip writer reports a full disk as "unexpected pos"."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the device" + (f" (writing {exc.filename})" if exc.filename else "")
    text = " ".join(str(exc).split())
    if "No space left" in text or "os error 28" in text:  # safetensors' writer: SafetensorError
        return f"no space left on the device ({text[:200]})"
    if "unexpected pos" in text:
        return f"a short write, which is how PyTorch reports a full disk ({text[:200]})"
    return f"{type(exc).__name__}: {text[:300]}"


def _attempt(action: Callable[[], Any]) -> str | None:
    from safetensors import SafetensorError

    try:
        action()
    except (OSError, RuntimeError, SafetensorError) as exc:
        return _failure(exc)
    return None


def _agreed(accelerator: Any, failure: str | None) -> str | None:
    """Every rank's failure, shared with all (a collective), so that no rank waits for one that stopped."""
    from accelerate.utils import gather_object

    failures = [f for f in gather_object([failure]) if f]
    return failures[0] if failures else None


def _size(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def _free_space(folder: Path) -> str:
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return ""
    return f" The filesystem holding {folder} now has {_size(usage.free)} free of {_size(usage.total)}."


def save_checkpoint(accelerator: Any, output_dir: Path, state: TrainerState, keep: int) -> Path:
    """Write a checkpoint for `state.step` collectively (every rank calls this); returns its folder.

    A failed write removes the temporary folder and raises an `MQTError` naming the path, on every rank.
    """
    root = Path(output_dir) / CHECKPOINTS
    final = root / checkpoint_name(state.step)
    temporary = root / f".tmp-{checkpoint_name(state.step)}"
    accelerator.wait_for_everyone()
    if final.exists():  # already saved at this step (e.g. a periodic save at the last step)
        return final

    def prepare() -> None:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-*"):  # left behind by a killed save
            shutil.rmtree(stale, ignore_errors=True)
        temporary.mkdir()

    def publish() -> None:
        (temporary / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))
        _fsync_tree(temporary)
        os.replace(temporary, final)
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    failure = _agreed(accelerator, _attempt(prepare) if accelerator.is_main_process else None)
    if failure is None:  # every rank's shards and RNG state, then the main process publishes
        failure = _agreed(accelerator, _attempt(lambda: accelerator.save_state(str(temporary))))
    if failure is None:
        failure = _agreed(accelerator, _attempt(publish) if accelerator.is_main_process else None)
    if failure is not None:
        if accelerator.is_main_process:
            shutil.rmtree(temporary, ignore_errors=True)
        accelerator.wait_for_everyone()
        raise MQTError(
            f"Could not write checkpoint {final.name} to {root}: {failure}.{_free_space(root)} The partial folder "
            f"{temporary.name} was removed. Free some space (or use another output dir), then rerun with --resume "
            "to continue from the last complete checkpoint."
        )
    if accelerator.is_main_process:
        for _, old in list_checkpoints(output_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def check_checkpoint(folder: Path, process_index: int) -> TrainerState:
    """What `load_state` does not check or would skip silently, for this rank: the trainer state,
    the RNG state file, and the headers of the weight files. Returns the trainer state."""
    from accelerate.utils import load
    from safetensors import SafetensorError, safe_open

    state_file = folder / STATE_FILE
    try:
        data = json.loads(state_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MQTError(f"no {STATE_FILE}") from None
    except (OSError, ValueError) as exc:
        raise MQTError(f"{STATE_FILE} is unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise MQTError(f"{STATE_FILE} does not hold a JSON object")
    state = TrainerState.from_dict(data)
    rng_file = folder / f"random_states_{process_index}.pkl"
    if not rng_file.is_file():
        raise MQTError(f"the RNG state of rank {process_index} ({rng_file.name}) is missing, so the resumed run would "
                       "not repeat the interrupted one")
    try:
        rng = load(rng_file)
    except Exception as exc:  # torch.load raises many types on a damaged pickle
        first = " ".join(str(exc).split()).split(". ")[0][:160]
        raise MQTError(f"the RNG state of rank {process_index} ({rng_file.name}) is unreadable "
                       f"({type(exc).__name__}: {first})") from None
    if not isinstance(rng, dict) or any(key not in rng for key in _RNG_KEYS):
        raise MQTError(f"the RNG state of rank {process_index} ({rng_file.name}) lacks {', '.join(_RNG_KEYS)}")
    for weights in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt") as handle:
                handle.keys()
        except (SafetensorError, OSError) as exc:
            raise MQTError(f"{weights.name} is damaged ({exc})") from None
    return state


def load_checkpoint(accelerator: Any, folder: Path) -> TrainerState:
    """Restore model, optimizer, scheduler and RNG states from `folder`; return the trainer state.
    Anything damaged is an `MQTError` saying what (the model may then be partly overwritten)."""
    folder = Path(folder)
    state = check_checkpoint(folder, accelerator.process_index)
    try:
        accelerator.load_state(str(folder))
    except Exception as exc:  # truncated optimizer/scheduler pickles, missing files, mismatched state dicts
        raise MQTError(f"loading it failed ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})") from None
    return state


def checkpoint_layout(accelerator: Any) -> str:
    """How this run's checkpoints are written: another engine, or FSDP/DeepSpeed with other settings,
    writes files the checkpoint loader of this one cannot read."""
    from accelerate.utils import DistributedType

    state = accelerator.state
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return f"deepspeed-zero{state.deepspeed_plugin.zero_stage}"
    if accelerator.distributed_type == DistributedType.FSDP:
        kind = "sharded" if "SHARDED" in str(state.fsdp_plugin.state_dict_type) else "full"
        return f"fsdp{state.fsdp_plugin.fsdp_version}-{kind}"
    return "ddp"  # one process, DDP on CPU or GPUs: the same files


def check_same_layout(output_dir: Path, layout: str, world_size: int) -> None:
    """Refuse to resume from checkpoints written by another engine or process count (their files, or
    some ranks' RNG states, would not load, and every checkpoint would be set aside as damaged)."""
    for _, folder in list_checkpoints(output_dir):
        try:
            saved = TrainerState.from_dict(json.loads((folder / STATE_FILE).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, AttributeError, MQTError):
            continue  # unreadable: load_newest_intact reports it as damaged
        if saved.layout and (saved.layout, saved.world_size) != (layout, world_size):
            raise MQTError(
                f"{folder} was written by {saved.layout} with {saved.world_size} process(es); this run is {layout} with "
                f"{world_size}. Resume with the Accelerate config and process count that wrote it (checkpoints were left "
                "as they are).")


def load_newest_intact(accelerator: Any, output_dir: Path, warn: Callable[[str], None]) -> tuple[TrainerState, Path, list[str]] | None:
    """Load the newest checkpoint that every rank can load; None when there is none at all.

    Damaged checkpoints are reported through `warn`, renamed `damaged-step-*` (kept for inspection,
    never listed, pruned or overwritten) and returned as "name: why" lines. If none is intact, an
    `MQTError` lists them all.
    """
    found = list_checkpoints(output_dir)
    if not found:
        return None
    damaged: list[str] = []
    skipped: list[Path] = []
    for _, folder in reversed(found):
        try:
            state, failure = load_checkpoint(accelerator, folder), None
        except MQTError as exc:
            failure = str(exc)
        failure = _agreed(accelerator, failure)
        if failure is None:
            _set_aside(accelerator, skipped)
            return state, folder, damaged
        damaged.append(f"{folder}: {failure}")
        skipped.append(folder)
        warn(f"checkpoint {folder} is damaged: {failure}; trying the one before it")
    raise MQTError(f"No intact checkpoint under {Path(output_dir) / CHECKPOINTS}; every one is damaged:\n  "
                   + "\n  ".join(damaged) + "\nRemove them to start over, or restore the files.")


def _set_aside(accelerator: Any, folders: list[Path]) -> None:
    if accelerator.is_main_process:
        for folder in folders:
            target = folder.with_name(DAMAGED_PREFIX + folder.name)
            suffix = 1
            while target.exists():
                target, suffix = folder.with_name(f"{DAMAGED_PREFIX}{folder.name}.{suffix}"), suffix + 1
            os.replace(folder, target)
    accelerator.wait_for_everyone()
