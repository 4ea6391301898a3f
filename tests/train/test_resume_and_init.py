"""Damaged checkpoints, a full disk, and `--init-from` through the one model loader, via `mqt train`.

`--resume` falls back to the newest intact checkpoint, names every damaged one (an unreadable or
missing RNG state included: Accelerate alone skips it silently) and repeats the uninterrupted run's
losses from there; a full disk during a save is an error naming the path, with the temporary
folder removed.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from mqt_vlm.cli.main import main
from mqt_vlm.errors import MQTError
from mqt_vlm.train.checkpoint import TrainerState, save_checkpoint
from mqt_vlm.train.metrics import read_log

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
STEPS = 6


def run_mqt(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    output = (captured.out + captured.err).replace("\r", "\n")
    assert "Traceback" not in output
    return exit_info.value.code or 0, output


def train_args(photos: Path, output_dir: Path) -> list[str]:
    return ["train", str(CONFIGS / "stage1-tiny.yaml"), str(output_dir), "--data", str(photos / "captions.json"),
            "--image-folder", str(photos / "images"), "--max-steps", str(STEPS), "--save-every", "1",
            "--keep-checkpoints", str(STEPS), "--num-workers", "0"]


@pytest.fixture(scope="module")
def finished(photos: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny stage-1 run with a checkpoint after each of its 6 steps."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    output_dir = tmp_path_factory.mktemp("run") / "run"
    with pytest.raises(SystemExit) as exit_info:
        main(train_args(photos, output_dir))
    torch.set_num_threads(threads)
    assert exit_info.value.code in (0, None)
    return output_dir


def copy_run(finished: Path, tmp_path: Path) -> tuple[Path, Path]:
    output_dir = tmp_path / "run"
    shutil.copytree(finished, output_dir)
    shutil.rmtree(output_dir / "final")
    return output_dir, output_dir / "checkpoints"


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def losses(output_dir: Path) -> dict[int, float]:
    return {step: row["loss"] for step, row in read_log(output_dir)[0].items()}


def test_resume_falls_back_past_every_kind_of_damage(finished, photos, tmp_path, capsys, one_thread) -> None:
    output_dir, checkpoints = copy_run(finished, tmp_path)
    _truncate(checkpoints / "step-00000006" / "model.safetensors")
    (checkpoints / "step-00000005" / "random_states_0.pkl").unlink()
    (checkpoints / "step-00000004" / "random_states_0.pkl").write_bytes(b"not a pickle")
    _truncate(checkpoints / "step-00000003" / "optimizer.bin")
    (checkpoints / "step-00000002" / "trainer_state.json").write_text("{ not json")
    code, output = run_mqt([*train_args(photos, output_dir), "--resume"], capsys)
    assert code == 0, output[-3000:]
    for step, why in ((6, "model.safetensors is damaged"), (5, "random_states_0.pkl) is missing"),
                      (4, "random_states_0.pkl) is unreadable"), (3, "loading it failed"), (2, "trainer_state.json is unreadable")):
        line = next(x for x in output.splitlines() if f"warning: checkpoint {checkpoints / f'step-{step:08d}'} is damaged:" in x)
        assert why in line, (step, line)
        assert (checkpoints / f"damaged-step-{step:08d}").is_dir() and (checkpoints / f"step-{step:08d}").is_dir()
    assert f"resuming from {checkpoints / 'step-00000001'}, the newest intact checkpoint" in output
    resume = next(e for e in read_log(output_dir)[1] if e["event"] == "resume")
    assert resume["step"] == 1 and len(resume["damaged_checkpoints"]) == 5
    logged = [line for line in (output_dir / "train_log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(logged) == STEPS + STEPS - 1  # the copied steps 1..6, then 2..6 again after the resume
    assert losses(output_dir) == losses(finished)  # exactly the same: RNG and optimizer restored
    assert (output_dir / "final" / "model.safetensors").is_file()


def test_resume_with_no_intact_checkpoint_is_an_error(finished, photos, tmp_path, capsys) -> None:
    output_dir, checkpoints = copy_run(finished, tmp_path)
    for folder in checkpoints.glob("step-*"):
        (folder / "random_states_0.pkl").unlink()
    code, output = run_mqt([*train_args(photos, output_dir), "--resume"], capsys)
    assert code == 2 and "error: No intact checkpoint under" in output
    assert output.count("random_states_0.pkl) is missing") >= 2 * STEPS  # a warning and a line of the error each
    assert sorted(p.name for p in checkpoints.iterdir()) == [f"step-{s:08d}" for s in range(1, STEPS + 1)]  # untouched


def test_resume_with_a_damaged_run_config_is_an_error(finished, photos, tmp_path, capsys) -> None:
    output_dir, _ = copy_run(finished, tmp_path)
    (output_dir / "config.json").write_text("{ not json")
    code, output = run_mqt([*train_args(photos, output_dir), "--resume"], capsys)
    assert code == 2 and f"error: {output_dir / 'config.json'} (the run's config, compared on --resume) is damaged" in output


class FakeAccelerator:
    """One process whose save_state writes part of a file, then fails as a full disk does."""

    is_main_process = True
    process_index = 0

    def __init__(self, failure: BaseException) -> None:
        self.failure = failure

    def wait_for_everyone(self) -> None:
        pass

    def save_state(self, folder: str) -> None:
        Path(folder, "model.safetensors").write_bytes(b"partial")
        raise self.failure


@pytest.mark.parametrize(("failure", "said"), [
    (OSError(errno.ENOSPC, "No space left on device"), "no space left on the device"),
    (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 18048 vs 17940"), "a short write, which is how PyTorch reports a full disk"),
    (OSError(errno.EIO, "Input/output error"), "OSError: [Errno 5] Input/output error"),
])
def test_a_failed_save_names_the_path_and_removes_the_temporary_folder(failure, said, tmp_path) -> None:
    from safetensors import SafetensorError  # what safetensors raises on a real full disk

    for error in (failure, SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")):
        with pytest.raises(MQTError) as info:
            save_checkpoint(FakeAccelerator(error), tmp_path, TrainerState(step=3), keep=2)
        message = str(info.value)
        assert f"Could not write checkpoint step-00000003 to {tmp_path / 'checkpoints'}" in message and "free of" in message
        assert (said if error is failure else "no space left on the device") in message
        assert list((tmp_path / "checkpoints").iterdir()) == []  # no .tmp-step-*, no step-*


def test_disk_full_during_training_stops_with_the_path(photos, tmp_path, capsys, monkeypatch, cache_dir, one_thread) -> None:
    import accelerate

    def full_disk(self, output_dir: str, **kwargs) -> None:
        Path(output_dir, "model.safetensors").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(accelerate.Accelerator, "save_state", full_disk)
    output_dir = tmp_path / "run"
    code, output = run_mqt(train_args(photos, output_dir), capsys)
    assert code == 2, output[-3000:]
    assert f"error: Could not write checkpoint step-00000001 to {output_dir / 'checkpoints'}: no space left" in output
    assert os.listdir(output_dir / "checkpoints") == []


def test_init_from_a_builtin_model_trains_and_exports_a_strictly_loadable_model(photos, tmp_path, capsys, cache_dir, one_thread) -> None:
    from mqt_vlm.loading import load_model

    output_dir = tmp_path / "stage2"
    code, output = run_mqt(["train", str(CONFIGS / "stage2-tiny.yaml"), str(output_dir), "--init-from", "builtin:shapes",
                            "--data", str(photos / "conversations.json"), "--image-folder", str(photos / "images"),
                            "--max-steps", "1", "--num-workers", "0"], capsys)
    assert code == 0, output[-3000:]
    model, processor = load_model(output_dir / "final")
    assert model.num_queries == 32 and processor.num_queries == 32  # builtin:shapes' M, not the tiny preset's 16


def test_resume_with_another_engine_is_refused_and_keeps_the_checkpoints(finished, photos, tmp_path, capsys, one_thread) -> None:
    """A ZeRO-3 checkpoint (files the DDP loader cannot read) is not mistaken for a damaged one."""
    import json

    output_dir, checkpoints = copy_run(finished, tmp_path)
    state_file = checkpoints / "step-00000006" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    assert (state["layout"], state["world_size"]) == ("ddp", 1)
    state_file.write_text(json.dumps({**state, "layout": "deepspeed-zero3", "world_size": 2}))
    before = sorted(p.name for p in checkpoints.iterdir())
    code, output = run_mqt([*train_args(photos, output_dir), "--resume"], capsys)
    assert code == 2
    assert "step-00000006 was written by deepspeed-zero3 with 2 process(es); this run is ddp with 1" in " ".join(output.split())
    assert sorted(p.name for p in checkpoints.iterdir()) == before  # nothing renamed damaged-*
