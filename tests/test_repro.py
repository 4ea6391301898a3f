"""The reproduction's building blocks: describe-every-cell texts, the cell-key tokenizer, the
training conversations, and per-cell scoring of descriptions (generated and teacher-forced)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from mqt_vlm.data.synthetic import DESCRIBE_PROMPT, SynthConfig, write_dataset
from mqt_vlm.data.synthetic_scene import Scene, SceneObject, describe_scene, generate_scene, parse_description, scene_rng
from mqt_vlm.repro.conversations import ConversationConfig, image_records, scene_turns, shuffled_description, text_records

SCENE = Scene(grid=2, objects=(SceneObject(1, 2, "circle", "red"), SceneObject(2, 1, "square", "blue")))


def test_describe_names_every_cell_key_first_and_parses_back() -> None:
    text = describe_scene(SCENE)
    assert text == ("row 1, column 1: none. row 1, column 2: red circle. "
                    "row 2, column 1: blue square. row 2, column 2: none.")
    assert parse_description(text, 2) == {(1, 1): "none", (1, 2): "red circle", (2, 1): "blue square", (2, 2): "none"}
    # order does not matter, the first mention of a cell wins, cells outside the grid are ignored
    assert parse_description("row 2, column 2: red  Circle. row 2, column 2: none. row 3, column 1: none.", 2) == {
        (2, 2): "red circle"}
    shuffled = shuffled_description(SCENE, random.Random(0))
    assert shuffled != text and parse_description(shuffled, 2) == parse_description(text, 2)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from mqt_vlm.repro.base import BaseConfig, tokenizer_corpus
    from mqt_vlm.repro.tokenizer import train_tokenizer

    corpus = tokenizer_corpus(BaseConfig(grids=(4,)))[:200]
    return train_tokenizer(corpus, tmp_path_factory.mktemp("tok"), vocab_size=300)


def test_tokenizer_makes_each_cell_key_one_token_and_round_trips(tokenizer) -> None:
    for r, c in ((1, 1), (2, 3), (4, 4)):
        key = f"row {r}, column {c}"
        assert len(tokenizer(" " + key, add_special_tokens=False).input_ids) == 1, key
    question = "What shape is in row 2, column 3?"
    ids = tokenizer(question, add_special_tokens=False).input_ids
    assert tokenizer.decode(ids) == question
    # an answer word is the same token in a description and as a short answer
    description = tokenizer("row 1, column 1: none.", add_special_tokens=False).input_ids
    assert tokenizer(" none", add_special_tokens=False).input_ids[0] in description
    text = describe_scene(generate_scene(scene_rng(5, 0), SynthConfig()))
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False).input_ids) == text


def test_conversations_put_the_scene_first_and_every_answer_is_a_turn() -> None:
    synth = SynthConfig(seed=1)
    scene = generate_scene(scene_rng(1, 0), synth)
    config = ConversationConfig(questions=6, describe_prob=1.0, describe_questions=3)
    turns = scene_turns(scene, synth, random.Random(0), config, scene_text=None)
    assert turns[0]["value"] == f"<image>\n{DESCRIBE_PROMPT}"
    assert parse_description(turns[1]["value"], 4) == parse_description(describe_scene(scene), 4)
    assert len(turns) == 2 + 2 * 3 and sum("<image>" in t["value"] for t in turns) == 1
    plain = scene_turns(scene, synth, random.Random(0), ConversationConfig(questions=6, describe_prob=0.0), scene_text="SCENE")
    assert plain[0]["value"].startswith("SCENE\n") and len(plain) == 12
    assert [t["from"] for t in plain] == ["human", "gpt"] * 6
    records = text_records(SynthConfig(seed=2, grid=2, min_objects=1), 5, config)
    assert len(records) == 5 and all("<image>" not in r["conversations"][0]["value"] for r in records)
    assert records == text_records(SynthConfig(seed=2, grid=2, min_objects=1), 5, config)  # deterministic


def test_stage0_mixture_holds_every_grid_size() -> None:
    from mqt_vlm.repro.base import BaseConfig, stage0_records

    records = stage0_records(BaseConfig(grids=(2, 3, 4, 4), text_scenes=40))
    sizes = [max(key)[0] for key in (parse_description(r["conversations"][0]["value"].split("\n")[0], 9) for r in records)]
    assert len(records) == 40 and sizes.count(4) == 20 and sizes.count(2) == 10 and sizes.count(3) == 10
    assert sizes[:3] == [2, 3, 4]  # interleaved, not blocked


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_dataset(out, SynthConfig(seed=11, n_images=30), progress=False)
    return out


def test_dataset_writes_descriptions_for_stage1_and_the_test_split(synth_dir: Path) -> None:
    describe = json.loads((synth_dir / "describe_train.json").read_text())
    scenes = {s["index"]: s for s in json.loads((synth_dir / "scenes.json").read_text())}
    assert describe and all(scenes[d["image_index"]]["split"] == "train" for d in describe)
    lines = [json.loads(line) for line in (synth_dir / "test_describe.jsonl").read_text().splitlines()]
    assert {line["question_type"] for line in lines} == {"describe"}
    for line in lines:
        objects = {(o["row"], o["col"]): f"{o['colour']} {o['shape']}" for o in scenes[int(line["image"][7:13])]["objects"]}
        cells = parse_description(line["answer"], 4)
        assert len(cells) == 16 and all(cells[k] == objects.get(k, "none") for k in cells)
    records = image_records(list(scenes.values()), SynthConfig(seed=11), ConversationConfig())
    assert len(records) == len(describe) and all(r["conversations"][0]["value"].startswith("<image>\n") for r in records)


def test_synthetic_benchmark_scores_descriptions_per_cell(synth_dir: Path) -> None:
    from mqt_vlm.eval.benchmarks.synthetic import load_synthetic, score_synthetic, synthetic_rows

    items = load_synthetic(synth_dir)
    describe = [i for i in items if i.subset == "describe"]
    questions = [i for i in items if i.subset != "describe"]
    assert describe and questions and all(i.max_new_tokens >= 16 * 5 for i in describe)
    truth = {i.key: i.meta["answer"] for i in items}
    perfect = score_synthetic(items, truth)
    assert perfect["accuracy"] == 1.0 and perfect["describe_cell"] == 1.0
    # one cell wrong, one cell missing, the rest reordered: 14 of 16 right in the first description
    first = parse_description(truth[describe[0].key], 4)
    wrong = dict(first)
    wrong[(1, 1)] = "purple cross"
    del wrong[(4, 4)]
    text = " ".join(f"row {r}, column {c}: {v}." for (r, c), v in reversed(list(wrong.items())))
    scored = score_synthetic(items, {**truth, describe[0].key: text})
    assert scored["describe_cell"] == pytest.approx(1 - 2 / (16 * len(describe)))
    assert scored["accuracy"] == 1.0  # descriptions stay out of the question accuracy
    rows = synthetic_rows(score_synthetic(items, {describe[0].key: text}))
    assert rows == {"describe_cell": pytest.approx(100 * 14 / 16)}
