"""Every benchmark loader on its real LLaVA-1.5 layout, and the ways a layout can be wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.benchmarks import BENCHMARKS, EmbeddedImage, get_benchmark, parse_benchmarks
from mqt_vlm.eval.benchmarks.base import LONG_ANSWER_MAX_NEW_TOKENS, SHORT_ANSWER_MAX_NEW_TOKENS
from mqt_vlm.eval.benchmarks.short_answer import textvqa_question
from mqt_vlm.eval.generator import load_item_image

SHORT = "Answer the question using a single word or phrase."
CHOICE = "Answer with the option's letter from the given choices directly."


def load(name: str, root: Path):
    benchmark = get_benchmark(name)
    return benchmark.load(benchmark.data_dir(root))


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_layout_loads_with_unique_keys_and_readable_images(name: str, eval_data) -> None:
    root, _ = eval_data
    items = load(name, root)
    assert items
    assert len({item.key for item in items}) == len(items)
    image = load_item_image(items[0])
    assert image.mode == "RGB" and image.size[0] > 0
    for item in items:  # the answer-format suffix is never doubled
        assert item.text.count(SHORT) <= 1 and item.text.count(CHOICE) <= 1


def test_short_answer_suffix_kept_once_and_max_tokens(eval_data) -> None:
    root, _ = eval_data
    for name in ("vqav2", "gqa", "pope", "mme", "textvqa", "vizwiz"):
        for item in load(name, root):
            assert item.text.endswith(SHORT) and item.text.count(SHORT) == 1
            assert item.max_new_tokens == SHORT_ANSWER_MAX_NEW_TOKENS
    for name in ("scienceqa", "mmbench", "llavabench", "mmvet"):
        assert {i.max_new_tokens for i in load(name, root)} == {LONG_ANSWER_MAX_NEW_TOKENS}


def test_pope_labels_follow_question_order_per_split(eval_data) -> None:
    root, truth = eval_data
    items = load("pope", root)
    assert [(i.subset, i.meta["label"]) for i in items] == [truth["pope"][i.question_id] for i in items]
    assert [i.subset for i in get_benchmark("pope").limit(items, 1)] == ["adversarial", "popular", "random"]


def test_pope_label_count_mismatch_is_refused(eval_data, tmp_path: Path) -> None:
    root, _ = eval_data
    shutil.copytree(root / "pope", tmp_path / "pope")
    labels = tmp_path / "pope" / "coco" / "coco_pope_random.json"
    labels.write_text(labels.read_text().splitlines()[0] + "\n")
    with pytest.raises(MQTError, match="1 labels"):
        load("pope", tmp_path)


def test_mme_maps_prompts_back_to_the_benchmark_questions(eval_data) -> None:
    root, truth = eval_data
    items = load("mme", root)
    assert [{k: i.meta[k] for k in ("task", "image", "question", "answer")} for i in items] == truth["mme"]
    # the artwork file uses the two-space "  Please answer yes or no." variant; the converter's retry finds it
    assert any("  Please answer" in i.meta["question"] for i in items)
    assert items[0].key == "existence/000000006040.jpg" and items[1].key == "existence/000000006040.jpg#1"
    assert len(get_benchmark("mme").limit(items, 1)) == 6  # rounded up to whole images, per task


def test_mme_unknown_question_is_a_clear_error(eval_data, tmp_path: Path) -> None:
    root, _ = eval_data
    shutil.copytree(root / "MME", tmp_path / "MME")
    path = tmp_path / "MME" / "llava_mme.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[0]["text"] = "Is this a question nobody asked?\n" + SHORT
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(MQTError, match="nobody asked"):
        load("mme", tmp_path)


def test_scienceqa_runs_image_questions_only(eval_data) -> None:
    root, truth = eval_data
    items = load("scienceqa", root)
    assert [i.key for i in items] == ["11", "12", "14"]  # "13" has no image: not part of SQA-IMG
    assert all("<image>" not in i.text and i.text.endswith("\n" + CHOICE) for i in items)
    assert {i.key: (i.meta["answer"], i.meta["num_choices"]) for i in items} == truth["scienceqa"]


def test_mmbench_prompt_and_options_as_llava_builds_them(eval_data) -> None:
    root, truth = eval_data
    items = {i.key: i for i in load("mmbench", root)}
    assert items["0"].text == f"Look closely.\nWhat animal is this?\nA. cat\nB. dog\nC. bird\nD. fish\n{CHOICE}"
    assert items["1"].text == f"Is it day or night?\nA. day\nB. night\n{CHOICE}"  # no hint, options stop at C
    assert items["1000000"].text.endswith(f"A. dog\nB. bird\nC. fish\nD. cat\n{CHOICE}")
    assert {int(k): i.meta["answer"] for k, i in items.items()} == {k: v["answer"] for k, v in truth["mmbench"].items()}
    assert isinstance(items["0"].image, EmbeddedImage)
    cn = load("mmbench_cn", root)
    assert cn[0].text.endswith("\n请直接回答选项字母。")


def test_textvqa_repeated_image_ids_get_their_own_keys_and_answers(eval_data) -> None:
    root, truth = eval_data
    items = load("textvqa", root)
    assert [i.key for i in items] == ["003a8ae2ef43b901", "003a8ae2ef43b901#1", "00685bc495504d61"]
    assert [i.meta["answers"] for i in items] == truth["textvqa"]


def test_textvqa_question_extraction_matches_the_official_prompt_processor() -> None:
    assert textvqa_question(f"What brand?\nReference OCR token: a, b\n{SHORT}") == "what brand?"
    assert textvqa_question(f"Reference OCR token: a\nWhat brand?\n{SHORT}") == "what brand?"
    assert textvqa_question(f"What brand?\n{SHORT}") == "what brand?"
    assert textvqa_question("OCR tokens: a b Question: Why Not? Short answer:") == "why not?"
    with pytest.raises(MQTError, match="unexpected shape"):
        textvqa_question("one line only")


def test_seed_keeps_image_questions_and_mmmu_builds_mmmu_prompts(eval_data) -> None:
    root, _ = eval_data
    seed = load("seed", root)
    assert [i.key for i in seed] == ["101", "102"] and [i.meta["answer"] for i in seed] == ["A", "C"]
    assert [i.subset for i in seed] == ["Scene Understanding", "Instance Identity"]
    mmmu = {i.key: i for i in load("mmmu", root)}
    assert mmmu["validation_Art_1"].text == f"<image 1> Which style is this?\n(A) Baroque\n(B) Cubism\n\n{CHOICE}"
    assert mmmu["validation_Math_2"].text == f"<image 1> What is x?\n{SHORT}"
    assert mmmu["validation_Art_1"].subset == "Art"


def test_free_form_and_synthetic_layouts(eval_data) -> None:
    root, truth = eval_data
    bench = load("llavabench", root)
    assert bench[0].text == "What is in the cup?" and bench[0].meta["caption"] == "A cup of coffee.\nOn a saucer."
    assert bench[1].meta["reference"] == "A cup of coffee on a saucer."
    vet = load("mmvet", root)
    assert vet[0].meta["answer"] == "-1<AND>-5" and vet[0].meta["capability"] == ["ocr", "math"]
    synthetic = load("synthetic", root)
    assert {i.key: (i.meta["answer"], i.subset) for i in synthetic} == truth["synthetic"]
    assert all("Answer" not in i.text for i in synthetic)  # bare questions, as in training
    # --data-root may also be the `mqt data synth` folder itself
    direct = get_benchmark("synthetic")
    assert [i.key for i in direct.load(direct.data_dir(root / "synthetic"))] == [i.key for i in synthetic]


def test_missing_image_file_names_the_file(eval_data, tmp_path: Path) -> None:
    root, _ = eval_data
    shutil.copytree(root / "gqa", tmp_path / "gqa")
    (tmp_path / "gqa" / "data" / "images" / "n2.jpg").unlink()
    with pytest.raises(MQTError, match=r"GQA: 1 image file\(s\) missing: .*n2\.jpg"):
        load("gqa", tmp_path)


def test_missing_question_or_annotation_file_says_which(eval_data, tmp_path: Path) -> None:
    root, _ = eval_data
    with pytest.raises(MQTError, match="POPE question file not found"):
        load("pope", tmp_path)
    shutil.copytree(root / "textvqa", tmp_path / "textvqa")
    (tmp_path / "textvqa" / "TextVQA_0.5.1_val.json").unlink()
    with pytest.raises(MQTError, match="TextVQA annotations not found"):
        load("textvqa", tmp_path)


def test_broken_jsonl_line_is_reported_with_its_number(eval_data, tmp_path: Path) -> None:
    root, _ = eval_data
    shutil.copytree(root / "gqa", tmp_path / "gqa")
    path = tmp_path / "gqa" / "llava_gqa_testdev_balanced.jsonl"
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(MQTError, match=r"llava_gqa_testdev_balanced\.jsonl:5"):
        load("gqa", tmp_path)


def test_unknown_benchmark_names_the_choices() -> None:
    with pytest.raises(MQTError, match="Unknown benchmark 'vqa3'.*pope"):
        parse_benchmarks("pope,vqa3")
    assert [b.name for b in parse_benchmarks("SQA, pope,mm-vet,pope")] == ["scienceqa", "pope", "mmvet"]
    with pytest.raises(MQTError, match="No benchmark"):
        parse_benchmarks(" , ")
