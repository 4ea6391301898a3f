"""`data check` finds every kind of broken record, by id; training refuses invalid data unless told to skip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mqt_vlm.data.check import check, validate
from mqt_vlm.data.llava import read_records
from mqt_vlm.errors import MQTError


def _turns(question: str = "<image>\nWhat is this?", answer: str = "A cat.") -> list[dict]:
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


@pytest.fixture()
def broken(tmp_path: Path, photos: Path) -> tuple[Path, Path, dict[str, str]]:
    """A .jsonl file with one record per failure mode, plus good ones; returns (file, images, id -> kind)."""
    images = tmp_path / "images"
    shutil.copytree(photos / "images", images)
    (images / "not_an_image.jpg").write_text("this is text, not a JPEG")
    data = (photos / "images" / "chelsea.png").read_bytes()
    (images / "truncated.png").write_bytes(data[: len(data) // 3])
    long_question = "<image>\n" + "Describe every detail of this picture please. " * 40
    records = {
        "good-image": ({"image": "chelsea.png", "conversations": _turns()}, None),
        "good-text": ({"conversations": _turns("Two plus two?", "Four.")}, None),
        "missing": ({"image": "nowhere.png", "conversations": _turns()}, "missing_image"),
        "unreadable": ({"image": "not_an_image.jpg", "conversations": _turns()}, "unreadable_image"),
        "truncated-file": ({"image": "truncated.png", "conversations": _turns()}, "unreadable_image"),
        "no-placeholder": ({"image": "chelsea.png", "conversations": _turns("What is this?")}, "image_placeholder"),
        "two-placeholders": ({"image": "chelsea.png", "conversations": _turns("<image> and <image>")}, "image_placeholder"),
        "placeholder-late": ({"image": "chelsea.png", "conversations": _turns("Hi") + _turns("<image>\nAnd?")}, "image_placeholder"),
        "text-with-placeholder": ({"conversations": _turns()}, "image_placeholder"),
        "empty-turn": ({"image": "chelsea.png", "conversations": _turns(answer="  ")}, "empty_turn"),
        "gpt-first": ({"conversations": list(reversed(_turns("Hi", "Hello")))}, "non_alternating"),
        "two-humans": ({"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]}, "non_alternating"),
        "ends-with-human": ({"conversations": _turns("Hi", "Hello") + [{"from": "human", "value": "And?"}]}, "non_alternating"),
        "no-turns": ({"image": "chelsea.png", "conversations": []}, "no_conversations"),
        "bad-role": ({"conversations": [{"from": "robot", "value": "x"}, {"from": "gpt", "value": "y"}]}, "bad_turn"),
        "too-long": ({"image": "chelsea.png", "conversations": _turns(long_question)}, "too_long"),
    }
    lines = [json.dumps({"id": rid, **record}) for rid, (record, _) in records.items()]
    lines.insert(3, '{"id": "broken-json", "image": "chelsea.png", "conversations": [')
    lines.insert(5, '["not", "a", "record"]')
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n")
    expected = {rid: kind for rid, (_, kind) in records.items() if kind}
    return path, images, expected


def test_validate_reports_each_problem_with_its_id(broken, processor) -> None:
    path, images, expected = broken
    report = validate(path, images, processor, "vicuna_v1", max_length=200, max_budget=16, verify_images=True)
    found = {p.id: p.kind for p in report.problems}
    assert found.pop("broken-json") == "bad_json"  # the id is read from the start of the broken line
    assert found.pop("#5") == "not_a_record"
    assert found == expected
    assert [r.id for r in report.valid] == ["good-image", "good-text"]
    assert report.total == len(expected) + 4


def test_truncated_images_need_decoding_but_missing_and_non_images_do_not(broken, processor) -> None:
    path, images, _ = broken
    report = validate(path, images, processor, "vicuna_v1", max_length=200, max_budget=16, verify_images=False)
    kinds = {p.id: p.kind for p in report.problems}
    assert kinds["missing"] == "missing_image" and kinds["unreadable"] == "unreadable_image"  # header read
    assert "truncated-file" not in kinds  # its header is intact: only decoding finds it


def test_check_prints_a_summary_and_fails(broken, cache_dir, capsys) -> None:
    path, images, expected = broken
    with pytest.raises(MQTError, match="invalid"):
        check(path, images, max_length=200, num_visual_tokens=16)
    out = capsys.readouterr().out
    assert "invalid:   " in out and "missing_image (1): missing" in out
    for rid in expected:
        assert rid in out


def test_check_passes_on_good_data(photos, cache_dir, capsys) -> None:
    check(photos / "conversations.json", photos / "images", max_length=2048)
    check(photos / "captions.json", photos / "images", template="plain", max_length=64, num_visual_tokens=16)
    assert "invalid:   0" in capsys.readouterr().out


def test_plain_template_needs_image_and_one_exchange(tmp_path, photos, processor) -> None:
    path = tmp_path / "captions.json"
    path.write_text(json.dumps([
        {"id": "ok", "image": "chelsea.png", "conversations": _turns("<image>", "A cat.")},
        {"id": "text", "conversations": _turns("Hi", "Hello")},
        {"id": "multi", "image": "chelsea.png", "conversations": _turns() + _turns("More?", "No.")},
    ]))
    report = validate(path, photos / "images", processor, "plain", 128, 16)
    assert {p.id: p.kind for p in report.problems} == {"text": "template", "multi": "template"}


def test_a_json_file_that_does_not_parse_is_an_error(tmp_path) -> None:
    path = tmp_path / "data.json"
    path.write_text('[{"id": 1,}]')
    with pytest.raises(MQTError, match="not valid JSON"):
        read_records(path)
    path.write_text('{"id": 1}')
    with pytest.raises(MQTError, match="JSON list"):
        read_records(path)
