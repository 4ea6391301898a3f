"""Training refuses invalid data unless --skip-bad-samples, and then counts and logs every skip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mqt_vlm.data.llava import LlavaDataset, read_records
from mqt_vlm.errors import MQTError
from mqt_vlm.train.config import load_config
from mqt_vlm.train.metrics import read_log
from mqt_vlm.train.trainer import run_training

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _data_with_bad_records(photos: Path, folder: Path) -> Path:
    records = json.loads((photos / "conversations.json").read_text())[:6]
    records.append({"id": "ghost", "image": "missing.png", "conversations": records[0]["conversations"]})
    records.append({"id": "no-answer", "conversations": [{"from": "human", "value": "Hello?"}]})
    path = folder / "data.json"
    path.write_text(json.dumps(records))
    return path


def test_training_refuses_bad_data_then_skips_and_logs_it(photos: Path, tmp_path: Path, cache_dir: Path, one_thread: None) -> None:
    config = load_config(CONFIGS / "stage1-tiny.yaml").with_overrides({
        "data.path": str(_data_with_bad_records(photos, tmp_path)),
        "data.image_folder": str(photos / "images"),
        "data.template": "vicuna_v1",
        "data.max_length": 256,
        "data.num_workers": 0,
        "runtime.max_steps": 1,
    })
    with pytest.raises(MQTError, match="ghost") as info:
        run_training(config, tmp_path / "refused")
    assert "no-answer" in str(info.value) and "--skip-bad-samples" in str(info.value)
    run_training(config.with_overrides({"data.skip_bad_samples": True}), tmp_path / "skipped")
    _, events = read_log(tmp_path / "skipped")
    data = next(e for e in events if e["event"] == "data")
    assert data["bad_samples"] == 2 and set(data["bad_ids"]) == {"ghost", "no-answer"} and data["valid"] == 6


def test_image_lost_after_the_check_is_substituted_and_reported(photos: Path, tmp_path: Path, processor) -> None:
    images = tmp_path / "images"
    shutil.copytree(photos / "images", images)
    records, _ = read_records(photos / "conversations.json")
    strict = LlavaDataset(records, images, processor, "vicuna_v1", skip_bad_samples=False)
    lenient = LlavaDataset(records, images, processor, "vicuna_v1", skip_bad_samples=True)
    (images / records[0].image).unlink()  # disappears between the start-up check and loading
    with pytest.raises(MQTError, match=records[0].id):
        strict[0]
    item = lenient[0]
    assert item["substituted"] == [records[0].id] and item["id"] == records[1].id
    assert item["pixel_values"].shape == (3, 56, 56)
