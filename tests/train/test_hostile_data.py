"""Hostile data files through `mqt data check` and `mqt train`: image paths that leave the image
folder are refused (and never opened), and records that used to crash the check (a lone surrogate,
bytes that are not UTF-8, JSON nested 100k deep, a 157-byte 1 x 40000 PNG) are reported with their
ids next to the other bad records. Whole-file problems are one clear error. Always exit 2, no traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cli_run import assert_refused, run_mqt
from mqt_vlm.data.llava import LlavaDataset, read_records
from mqt_vlm.errors import MQTError
from mqt_vlm.train.metrics import read_log

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SECRET = "outside.png"


def _caption(record_id: str, image: str) -> dict:
    return {"id": record_id, "image": image,
            "conversations": [{"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": "A cat."}]}


@pytest.fixture()
def escaping(tmp_path: Path, photos: Path) -> tuple[Path, Path, dict[str, str]]:
    """(data file, image folder, id -> expected kind): every way out of the image folder, plus
    images outside the size rule and two good records."""
    images, secret = tmp_path / "images", tmp_path / "secret"
    images.mkdir()
    secret.mkdir()
    shutil.copy(photos / "images" / "chelsea.png", images / "chelsea.png")
    shutil.copy(photos / "images" / "coffee.png", secret / SECRET)
    Image.new("L", (1, 40000)).save(images / "tall.png", optimize=True)
    Image.new("L", (40000, 1)).save(images / "wide.png", optimize=True)
    assert (images / "tall.png").stat().st_size < 400  # a few hundred bytes, a 40000^2 canvas once padded
    os.symlink(secret / SECRET, images / "link-out.png")
    os.symlink("/etc/passwd", images / "link-passwd.png")
    expected = {
        "dotdot": ("../secret/" + SECRET, "image_outside_folder"),
        "absolute": (str(secret / SECRET), "absolute_image_path"),
        "etc-passwd": ("/etc/passwd", "absolute_image_path"),
        "symlink-out": ("link-out.png", "image_outside_folder"),
        "symlink-passwd": ("link-passwd.png", "image_outside_folder"),
        "tall": ("tall.png", "image_size"),
        "wide": ("wide.png", "image_size"),
    }
    records = [_caption("good-1", "chelsea.png"), *[_caption(rid, image) for rid, (image, _) in expected.items()],
               _caption("good-2", "chelsea.png")]
    path = tmp_path / "escaping.json"
    path.write_text(json.dumps(records))
    return path, images, {rid: kind for rid, (_, kind) in expected.items()}


@pytest.fixture()
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file PIL opens or `Path.read_bytes` reads from now on (how images are read), resolved."""
    seen: list[Path] = []
    real_open, real_read = Image.open, Path.read_bytes

    def spy_open(source, *args, **kwargs):
        if isinstance(source, (str, os.PathLike)):
            seen.append(Path(source).resolve())
        return real_open(source, *args, **kwargs)

    def spy_read(self: Path) -> bytes:
        seen.append(self.resolve())
        return real_read(self)

    monkeypatch.setattr(Image, "open", spy_open)
    monkeypatch.setattr(Path, "read_bytes", spy_read)
    return seen


def _outside(seen: list[Path], images: Path) -> list[Path]:
    return [p for p in seen if p.suffix == ".png" and not p.is_relative_to(images.resolve()) or p == Path("/etc/passwd")]


def test_data_check_refuses_paths_out_of_the_image_folder_without_opening_them(escaping, opened, capsys, cache_dir) -> None:
    path, images, expected = escaping
    output = assert_refused(["data", "check", str(path), "--image-folder", str(images), "--max-length", "256",
                             "--num-visual-tokens", "16"], capsys, "7 of 9 records are invalid")
    for rid, kind in expected.items():
        assert f"[{rid}] {kind}:" in output
    assert "valid:     2" in output
    assert _outside(opened, images) == []  # /etc/passwd and the secret file were never read


def test_allow_absolute_paths_admits_absolute_paths_only(escaping, capsys, cache_dir) -> None:
    path, images, expected = escaping
    output = assert_refused(["data", "check", str(path), "--image-folder", str(images), "--max-length", "256",
                             "--num-visual-tokens", "16", "--allow-absolute-paths"], capsys)
    assert "[absolute]" not in output  # a real image, now allowed
    assert "[etc-passwd] unreadable_image:" in output  # allowed to be opened, and not an image
    for rid in ("dotdot", "symlink-out", "symlink-passwd"):
        assert f"[{rid}] image_outside_folder:" in output


def test_training_refuses_the_same_records_then_skips_them_unopened(escaping, opened, tmp_path, capsys, cache_dir, one_thread) -> None:
    path, images, expected = escaping
    args = ["train", str(CONFIGS / "stage1-tiny.yaml"), str(tmp_path / "run"), "--data", str(path),
            "--image-folder", str(images), "--max-steps", "1", "--num-workers", "0"]
    output = assert_refused(args, capsys, "--skip-bad-samples")
    for rid, kind in expected.items():
        assert rid in output and kind in output
    code, output = run_mqt([*args, "--skip-bad-samples"], capsys)
    assert code == 0, output[-3000:]
    data = next(e for e in read_log(tmp_path / "run")[1] if e["event"] == "data")
    assert set(data["bad_ids"]) == set(expected) and data["valid"] == 2
    assert _outside(opened, images) == []


def test_the_dataset_refuses_an_image_swapped_for_a_link_after_the_check(escaping, processor) -> None:
    path, images, _ = escaping
    records = [r for r in read_records(path)[0] if r.id == "good-1"]
    dataset = LlavaDataset(records, images, processor, "plain")
    assert dataset[0]["pixel_values"] is not None
    (images / "chelsea.png").unlink()
    os.symlink(images.parent / "secret" / SECRET, images / "chelsea.png")
    with pytest.raises(MQTError, match="outside the image folder"):
        dataset[0]


def _turns(question: str = "Hi?", answer: str = "Hello.") -> list[dict]:
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


def test_data_check_reports_records_that_used_to_crash_it(tmp_path: Path, capsys, cache_dir) -> None:
    """One .jsonl with every record-level crash of issue 13 between good records: all reported, by id."""
    images = tmp_path / "images"
    images.mkdir()
    Image.new("L", (1, 40000)).save(images / "tall.png", optimize=True)
    lines = [
        json.dumps({"id": "good-1", "conversations": _turns()}).encode(),
        b'{"id": "surrogate", "conversations": [{"from": "human", "value": "\\ud800"}, {"from": "gpt", "value": "x"}]}',
        b'{"id": "not-utf8", "conversations": [{"from": "human", "value": "caf\xe9 \xff"}, {"from": "gpt", "value": "x"}]}',
        b'{"id": "deep", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b', "conversations": []}',
        b'{"id": "huge-number", "x": ' + b"9" * 5000 + b"}",
        b'{"id": "broken", "conversations": [',
        json.dumps({"id": "tall", "image": "tall.png", "conversations": _turns("<image>\nWhat?")}).encode(),
        json.dumps({"id": "line-separator", "conversations": _turns("a\u2028b", "c\u2029d")}, ensure_ascii=False).encode(),
        b'{"id": "surrogate-id-\\udcff", "conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]}',
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    output = assert_refused(["data", "check", str(path), "--image-folder", str(images), "--max-length", "256",
                             "--num-visual-tokens", "16", "--no-verify-images"], capsys)
    for rid, kind in {"surrogate": "bad_encoding", "not-utf8": "bad_encoding", "deep": "too_deep", "huge-number": "bad_json",
                      "broken": "bad_json", "tall": "image_size"}.items():
        assert f"[{rid}] {kind}:" in output
    assert "lone surrogate (\\ud800)" in output and "not UTF-8 (0xe9)" in output
    assert "valid:     3" in output  # good-1, line-separator (U+2028 is not a line break in .jsonl), surrogate-id-\udcff
    assert "6 of 9 records are invalid" in output


def test_a_json_list_with_a_record_nested_too_deep_reports_it_and_reads_the_rest(tmp_path: Path, capsys, cache_dir) -> None:
    good = json.dumps({"id": "good", "conversations": _turns()})
    text = f'[{good}, {{"id": "deep", "x": {"[" * 100_000}{"]" * 100_000}}}, "\\ud800 not a record", {good.replace("good", "good-2")}]'
    path = tmp_path / "data.json"
    path.write_text(text)
    output = assert_refused(["data", "check", str(path), "--max-length", "256"], capsys, "[deep] too_deep:", "[#2] not_a_record:")
    assert "valid:     2" in output


@pytest.mark.parametrize(("content", "message"), [
    ("hello", "is not valid JSON: Expecting value at line 1, column 1"),
    ('{"id": 1}', "must hold a JSON list of records"),
    ("", "is not valid JSON"),
    ('[{"id": 1}, {"id": 2', "is not valid JSON"),
    ('[{"id": "deep", "x": ' + "[" * 100_000 + "]" * 99_999 + "}]", "is not valid JSON"),  # too deep, and never ends
])
def test_a_file_that_is_not_a_json_list_is_one_clear_error(content: str, message: str, tmp_path: Path, capsys, cache_dir) -> None:
    path = tmp_path / "data.json"
    path.write_text(content)
    output = assert_refused(["data", "check", str(path)], capsys, message)
    assert "records:" not in output  # no half report


def test_the_real_process_prints_no_traceback(tmp_path: Path, cache_dir) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"id": "s", "conversations": [{"from": "human", "value": "\\ud800"}, {"from": "gpt", "value": "x"}]}\n'
                     + b'{"id": "d", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n" + b'{"id": "u", "v": "\xff"}\n')
    run = subprocess.run([sys.executable, "-m", "mqt_vlm.cli", "data", "check", str(path)],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "MQT_CACHE": str(cache_dir)})
    assert run.returncode == 2, run.stderr[-3000:]
    assert "error: 3 of 3 records are invalid" in run.stderr and "Traceback" not in run.stderr
