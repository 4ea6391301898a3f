"""Tests for the synthetic grid-VQA generator.

Answers are re-derived here from the written scene graphs by an independent rule set (regexes over
the question text + direct searches of the object list), never by calling the generator's answer
code; the images are checked against the scene graphs by reading pixels.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mqt_vlm.data.synthetic import (
    SynthConfig,
    generate_scene,
    questions_for_scene,
    render_scene,
    scene_rng,
    synth,
    write_dataset,
)
from mqt_vlm.data.synthetic_scene import COLOUR_RGB
from mqt_vlm.errors import MQTError

SPLIT_FILES = ("train.json", "val.json", "test.json")
KNOWN_COLOURS = {"red", "green", "blue", "yellow", "purple", "orange"}
SHAPE_WORDS = ("circle", "square", "triangle", "diamond", "cross")
SINGULAR: dict[str, str | None] = {"shape": None, **{s: s for s in SHAPE_WORDS}}
PLURALS: dict[str, str | None] = {
    "shapes": None,
    "circles": "circle",
    "squares": "square",
    "triangles": "triangle",
    "diamonds": "diamond",
    "crosses": "cross",
}


def _expected(question: str, objects: list[dict], grid: int) -> tuple[str, str]:
    """(answer, type) for a question, computed from scratch from the object list."""

    def matching(colour: str | None, shape: str | None) -> list[dict]:
        return [
            o
            for o in objects
            if (colour is None or o["colour"] == colour) and (shape is None or o["shape"] == shape)
        ]

    if m := re.fullmatch(r"Is there (a|an) (?:(\w+) )?(\w+)\?", question):
        article, colour, noun = m.groups()
        assert colour is None or colour in KNOWN_COLOURS and noun in SINGULAR, question
        assert article == ("an" if (colour or noun)[0] in "aeiou" else "a"), question
        return ("yes" if matching(colour, SINGULAR[noun]) else "no"), "global"
    if m := re.fullmatch(r"How many (?:(\w+) )?(\w+) are there\?", question):
        colour, noun = m.groups()
        assert (colour is None or colour in KNOWN_COLOURS) and noun in PLURALS, question
        return str(len(matching(colour, PLURALS[noun]))), "count"
    if m := re.fullmatch(r"What (colour is the shape|shape is) in row (\d+), column (\d+)\?", question):
        attr = "colour" if m.group(1).startswith("colour") else "shape"
        row, col = int(m.group(2)), int(m.group(3))
        assert 1 <= row <= grid and 1 <= col <= grid, question
        here = [o for o in objects if o["row"] == row and o["col"] == col]
        assert len(here) <= 1
        return (here[0][attr] if here else "none"), "cell"
    relation = r"What (colour is the shape|shape is) (left of|right of|above|below) the (\w+) (\w+)\?"
    if m := re.fullmatch(relation, question):
        attr = "colour" if m.group(1).startswith("colour") else "shape"
        direction, colour, shape = m.group(2), m.group(3), m.group(4)
        refs = matching(colour, shape)
        assert len(refs) == 1, f"referent not unique in {question!r}"
        r, c = refs[0]["row"], refs[0]["col"]
        if direction == "left of":
            cands = sorted((o for o in objects if o["row"] == r and o["col"] < c), key=lambda o: -o["col"])
        elif direction == "right of":
            cands = sorted((o for o in objects if o["row"] == r and o["col"] > c), key=lambda o: o["col"])
        elif direction == "above":
            cands = sorted((o for o in objects if o["col"] == c and o["row"] < r), key=lambda o: -o["row"])
        else:
            cands = sorted((o for o in objects if o["col"] == c and o["row"] > r), key=lambda o: o["row"])
        assert cands, f"no object {direction} the referent in {question!r}"
        return cands[0][attr], "relation"
    raise AssertionError(f"unrecognised question {question!r}")


def _load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthConfig, dict]:
    out = tmp_path_factory.mktemp("synth")
    config = SynthConfig(seed=3, n_images=60)
    meta = write_dataset(out, config, progress=False)
    return out, config, meta


def _all_records(out: Path) -> list[dict]:
    return [r for name in SPLIT_FILES for r in _load(out / name)]


def test_answers_match_independent_rules(small: tuple[Path, SynthConfig, dict]) -> None:
    out, config, meta = small
    scenes = {s["image"]: s for s in _load(out / "scenes.json")}
    records = _all_records(out)
    assert len(records) == config.n_images * config.questions_per_image
    for r in records:
        human, gpt = r["conversations"]
        assert human["from"] == "human" and gpt["from"] == "gpt"
        assert human["value"] == "<image>\n" + r["question"]
        assert gpt["value"] == r["answer"]
        scene = scenes[r["image"]]
        answer, qtype = _expected(r["question"], scene["objects"], scene["grid"])
        assert (r["answer"], r["question_type"]) == (answer, qtype), r
        assert re.fullmatch(r"[a-z0-9]+", r["answer"]) and r["answer"] in meta["answer_vocabulary"]
        assert r["answer"] in meta["answers_by_type"][qtype]


def test_every_type_appears_and_yes_no_balance(small: tuple[Path, SynthConfig, dict]) -> None:
    out, _, meta = small
    records = _all_records(out)
    assert {r["question_type"] for r in records} == {"global", "count", "cell", "relation"}
    for name in SPLIT_FILES:
        answers = [r["answer"] for r in _load(out / name) if r["question_type"] == "global"]
        assert answers and abs(answers.count("yes") - answers.count("no")) <= 2, name
    # Questions about one image are distinct, and "none" (empty cell) answers do occur.
    by_image: dict[str, list[str]] = {}
    for r in records:
        by_image.setdefault(r["image"], []).append(r["question"])
    assert all(len(qs) == len(set(qs)) for qs in by_image.values())
    assert meta["answer_counts"].get("none", 0) > 0


def test_eval_jsonl_mirrors_test_split(small: tuple[Path, SynthConfig, dict]) -> None:
    out, _, _ = small
    lines = [json.loads(line) for line in (out / "test_questions.jsonl").read_text().splitlines()]
    test = _load(out / "test.json")
    assert len(lines) == len(test) > 0
    for line, r in zip(lines, test):
        assert line == {
            "question_id": r["id"],
            "image": r["image"],
            "text": r["question"],
            "answer": r["answer"],
            "question_type": r["question_type"],
        }
        assert "<image>" not in line["text"]


def test_splits_disjoint_by_image(small: tuple[Path, SynthConfig, dict]) -> None:
    out, config, meta = small
    images = {name: {r["image"] for r in _load(out / name)} for name in SPLIT_FILES}
    assert not images["train.json"] & images["val.json"]
    assert not images["train.json"] & images["test.json"]
    assert not images["val.json"] & images["test.json"]
    union = set().union(*images.values())
    assert len(union) == config.n_images == len(list((out / "images").glob("*.png")))
    assert all((out / image).is_file() for image in union)
    assert meta["splits"]["val"]["images"] == round(60 * config.val_fraction) == len(images["val.json"])
    assert meta["splits"]["test"]["images"] == round(60 * config.test_fraction) == len(images["test.json"])
    captions = _load(out / "captions_train.json")
    assert {c["image"] for c in captions} == images["train.json"]
    ids = [r["id"] for r in _all_records(out)] + [c["id"] for c in captions]
    assert len(ids) == len(set(ids))


def test_captions_name_every_object(small: tuple[Path, SynthConfig, dict]) -> None:
    out, _, _ = small
    scenes = {s["image"]: s for s in _load(out / "scenes.json")}
    for c in _load(out / "captions_train.json"):
        assert c["conversations"][0] == {"from": "human", "value": "<image>"}
        text = c["conversations"][1]["value"]
        assert text.startswith("A 4x4 grid with ") and text.endswith(".")
        found = re.findall(r"an? (\w+) (\w+) in row (\d+), column (\d+)", text)
        objects = scenes[c["image"]]["objects"]
        expected = sorted((o["colour"], o["shape"], str(o["row"]), str(o["col"])) for o in objects)
        assert sorted(found) == expected


def _classify(mask: np.ndarray) -> str:
    """Shape from a boolean mask by fill ratio of its bounding box and which rows are full."""
    ys, xs = np.nonzero(mask)
    box = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    fill = box.mean()
    if fill > 0.95:
        return "square"
    if 0.7 < fill < 0.9 and not box[0, 0] and not box[-1, -1]:
        return "circle"
    if fill < 0.7 and box[-1].all() and not box[0].all():
        return "triangle"
    return f"unknown(fill={fill:.2f})"


def _check_pixels(image: Image.Image, scene: dict, config: SynthConfig, classify: bool) -> None:
    pixels = np.asarray(image)
    assert pixels.shape == (config.image_size, config.image_size, 3)
    cell = config.image_size / config.grid
    objects = {(o["row"], o["col"]): o for o in scene["objects"]}
    for row in range(1, config.grid + 1):
        for col in range(1, config.grid + 1):
            y0, y1 = int(np.ceil((row - 1) * cell)), int(row * cell)
            x0, x1 = int(np.ceil((col - 1) * cell)), int(col * cell)
            patch = pixels[y0:y1, x0:x1]
            is_bg = (patch == config.background).all(-1)
            obj = objects.get((row, col))
            if obj is None:
                assert is_bg.all(), (row, col)
                continue
            is_obj = (patch == COLOUR_RGB[obj["colour"]]).all(-1)
            assert (is_bg | is_obj).all(), "only background and the object's own colour"
            assert is_obj[patch.shape[0] // 2, patch.shape[1] // 2], "the cell centre is covered"
            if classify:
                assert _classify(is_obj) == obj["shape"], (row, col, obj)


def test_images_agree_with_scene_graph(small: tuple[Path, SynthConfig, dict]) -> None:
    out, config, _ = small
    for scene in _load(out / "scenes.json"):
        with Image.open(out / scene["image"]) as image:
            assert image.mode == "RGB"
            _check_pixels(image, scene, config, classify=True)


def test_all_shapes_colours_and_uneven_cells(tmp_path: Path) -> None:
    config = SynthConfig(
        seed=1, n_images=12, grid=3, image_size=50, shapes=("circle", "square", "triangle", "diamond", "cross"),
        colours=tuple(KNOWN_COLOURS), min_objects=4, max_objects=9, questions_per_image=6,
    )  # fmt: skip
    write_dataset(tmp_path, config, progress=False)
    scenes = {s["image"]: s for s in _load(tmp_path / "scenes.json")}
    for r in _all_records(tmp_path):
        scene = scenes[r["image"]]
        assert (r["answer"], r["question_type"]) == _expected(r["question"], scene["objects"], 3)
    for scene in scenes.values():
        with Image.open(tmp_path / scene["image"]) as image:
            _check_pixels(image, scene, config, classify=False)
    meta = _load(tmp_path / "meta.json")
    assert meta["answers_by_type"]["count"] == [str(i) for i in range(10)]


def test_same_seed_is_byte_identical_and_seed_matters(tmp_path: Path) -> None:
    config = SynthConfig(seed=11, n_images=20)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    state = random.getstate()
    write_dataset(a, config, progress=False)
    random.seed(12345)  # global RNG state must not matter
    write_dataset(b, config, progress=False)
    random.setstate(state)
    write_dataset(c, SynthConfig(seed=12, n_images=20), progress=False)
    names = sorted(p.name for p in a.iterdir() if p.is_file())
    assert "meta.json" in names and "test_questions.jsonl" in names
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for png in sorted((a / "images").glob("*.png")):
        assert (b / "images" / png.name).read_bytes() == png.read_bytes()
        assert np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(b / "images" / png.name)))
    assert (a / "train.json").read_bytes() != (c / "train.json").read_bytes()
    assert (a / "scenes.json").read_bytes() != (c / "scenes.json").read_bytes()
    pngs = list((a / "images").glob("*.png"))
    differing = [p.name for p in pngs if p.read_bytes() != (c / "images" / p.name).read_bytes()]
    assert len(differing) > 15


def test_generator_functions_do_not_touch_global_rng() -> None:
    config = SynthConfig()
    state = random.getstate()
    scene = generate_scene(scene_rng(0, 5), config)
    questions = questions_for_scene(scene, scene_rng(0, 5, "questions"), config)
    image = render_scene(scene, config)
    assert random.getstate() == state
    assert generate_scene(scene_rng(0, 5), config) == scene
    assert questions_for_scene(scene, scene_rng(0, 5, "questions"), config) == questions
    assert generate_scene(7, config) == generate_scene(random.Random(7), config)
    assert image.size == (64, 64) and len(questions) == config.questions_per_image
    assert len({q.text for q in questions}) == len(questions)
    assert {q.type for q in questions} <= {"global", "count", "cell", "relation"}


def test_first_yes_steers_global_answers() -> None:
    config = SynthConfig(question_types=("global",), questions_per_image=3)
    scene = generate_scene(scene_rng(0, 0), config)
    for first in (True, False):
        answers = [q.answer for q in questions_for_scene(scene, scene_rng(0, 0, "q"), config, first_yes=first)]
        assert answers[0] == ("yes" if first else "no")
        assert answers[:2] in (["yes", "no"], ["no", "yes"])


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"shapes": ("circle", "hexagon")}, "unknown shapes"),
        ({"colours": ("red", "teal")}, "unknown colours"),
        ({"image_size": 10}, "px per cell"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "training images"),
        ({"min_objects": 5, "max_objects": 3}, "max_objects"),
        ({"n_images": 0}, "n_images"),
        ({"question_types": ("global", "colour")}, "question_types"),
        ({"background": (220, 30, 30)}, "background"),
        ({"grid": 4.0}, "grid must be an int"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, fragment: str) -> None:
    with pytest.raises(MQTError, match=fragment):
        SynthConfig(**kwargs)


def test_synth_entry_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    synth(tmp_path / "d", seed=2, n=8, grid=3, image_size=48)
    meta = _load(tmp_path / "d" / "meta.json")
    assert (meta["seed"], meta["n_images"], meta["grid"], meta["image_size"]) == (2, 8, 3, 48)
    assert sum(v["images"] for v in meta["splits"].values()) == 8
    assert "wrote" in capsys.readouterr().out
    with Image.open(tmp_path / "d" / "images" / "000000.png") as image:
        assert image.size == (48, 48)
