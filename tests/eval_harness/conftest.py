"""Fixture benchmark folders in LLaVA-1.5's real eval layouts, built from real photos, plus the
ground truth each was built from (kept here, independent of the loaders, for hand computations)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

SHORT = "Answer the question using a single word or phrase."
CHOICE = "Answer with the option's letter from the given choices directly."


def _save(image: Image.Image, path: Path, size: tuple[int, int] = (64, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert("RGB").resize(size).save(path)


def _jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def _json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")


def _b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").resize((64, 48)).save(buffer, format="JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


def build_pope(root: Path, photos: list[Image.Image], truth: dict) -> None:
    d = root / "pope"
    questions, labels = [], {}
    qid = 1
    for split, split_labels in (("adversarial", ["yes", "no"]), ("popular", ["no", "yes"]), ("random", ["yes", "yes"])):
        labels[split] = []
        for k, label in enumerate(split_labels):
            image = f"COCO_val2014_{qid:012d}.jpg"
            _save(photos[qid % len(photos)], d / "val2014" / image)
            questions.append({"question_id": qid, "image": image, "text": f"Is there a cat in the image?\n{SHORT}",
                              "category": split})
            labels[split].append({"question_id": k + 1, "image": image, "text": "Is there a cat in the image?",
                                  "label": label})
            truth["pope"][qid] = (split, label)
            qid += 1
    _jsonl(d / "llava_pope_test.jsonl", questions)
    for split, lines in labels.items():
        _jsonl(d / "coco" / f"coco_pope_{split}.json", lines)


def build_mme(root: Path, photos: list[Image.Image], truth: dict) -> None:
    d = root / "MME"
    images = d / "MME_Benchmark_release_version"
    questions = []
    # (task, file stem, ext, images/ subfolder?, [(question, answer, gt separator)])
    spec = [
        ("existence", "000000006040", "jpg", False, [("Is there a cat in this image?", "Yes", " "),
                                                      ("Is there a train in this image?", "No", " ")]),
        ("existence", "000000006471", "jpg", False, [("Is there a person in this image?", "Yes", " "),
                                                      ("Is there a dog in this image?", "No", " ")]),
        ("artwork", "10002", "jpg", True, [("Is this artwork created by Monet?", "No", "  "),
                                            ("Is this artwork a photo?", "Yes", " ")]),
        ("code_reasoning", "0020", "png", False, [("Is a python code shown in the picture?", "Yes", " "),
                                                   ("Is a c++ code shown in the picture?", "No", " ")]),
    ]
    gt_files: dict[Path, list[str]] = {}
    for n, (task, stem, ext, nested, qas) in enumerate(spec):
        image_rel = f"{task}/images/{stem}.{ext}" if nested else f"{task}/{stem}.{ext}"
        _save(photos[n % len(photos)], images / image_rel)
        txt = images / task / ("questions_answers_YN" if nested else "") / f"{stem}.txt"
        for question, answer, sep in qas:
            gt_files.setdefault(txt, []).append(f"{question}{sep}Please answer yes or no.\t{answer}")
            questions.append({"question_id": f"{task}/{stem}.{ext}", "image": image_rel, "text": f"{question}\n{SHORT}",
                              "category": task})
            truth["mme"].append({"task": task, "image": f"{stem}.txt", "question": f"{question}{sep}Please answer yes or no.",
                                 "answer": answer})
    for txt, lines in gt_files.items():
        txt.parent.mkdir(parents=True, exist_ok=True)
        txt.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _jsonl(d / "llava_mme.jsonl", questions)


def build_gqa(root: Path, photos: list[Image.Image], truth: dict) -> None:
    d = root / "gqa"
    questions, annotations = [], {}
    for n, (question, answer) in enumerate([("Is it overcast?", "no"), ("What animal is it?", "cat"),
                                            ("Which color is the cup?", "white"), ("Is the man smiling?", "yes")]):
        qid, image = f"2013{n:05d}", f"n{n}.jpg"
        _save(photos[n % len(photos)], d / "data" / "images" / image)
        questions.append({"question_id": qid, "image": image, "text": f"{question}\n{SHORT}", "category": "default"})
        annotations[qid] = {"answer": answer, "imageId": f"n{n}", "question": question}
        truth["gqa"][qid] = answer
    _jsonl(d / "llava_gqa_testdev_balanced.jsonl", questions)
    _json(d / "data" / "testdev_balanced_questions.json", annotations)


def build_scienceqa(root: Path, photos: list[Image.Image], truth: dict) -> None:
    d = root / "scienceqa"
    problems, questions = {}, []
    for pid, choices, answer, with_image in (("11", ["dog", "cat"], 1, True), ("12", ["red", "green", "blue"], 0, True),
                                             ("13", ["yes", "no"], 1, False), ("14", ["up", "down"], 0, True)):
        options = " ".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(choices))
        text = f"Context: A photo.\nQuestion: Which one?\nOptions: {options}"
        record = {"id": pid, "conversations": [{"from": "human", "value": ("<image>\n" if with_image else "") + text},
                                               {"from": "gpt", "value": f"The answer is {chr(65 + answer)}."}]}
        problems[pid] = {"answer": answer, "choices": choices, "image": "image.png" if with_image else None, "split": "test"}
        if with_image:
            record["image"] = f"{pid}/image.png"
            _save(photos[int(pid) % len(photos)], d / "images" / "test" / pid / "image.png")
            truth["scienceqa"][pid] = (answer, len(choices))
        questions.append(record)
    _json(d / "llava_test_CQM-A.json", questions)
    _json(d / "problems.json", problems)
    _json(d / "pid_splits.json", {"test": list(problems)})


def _tsv_cell(value: Any) -> str:
    return "" if value is None else str(value)


def build_mmbench(root: Path, photos: list[Image.Image], truth: dict) -> None:
    d = root / "mmbench"
    header = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source", "l2-category",
              "comment", "split"]
    base = [
        (0, "What animal is this?", "Look closely.", ["cat", "dog", "bird", "fish"], "A", "attribute"),
        (1, "Is it day or night?", None, ["day", "night", None, None], "A", "scene"),
        (2, "What is in the cup?", None, ["coffee", "tea", "milk", None], "A", "object"),
    ]
    rows = []
    for index, question, hint, options, answer, category in base:
        image = _b64(photos[index % len(photos)])
        present = [o for o in options if o is not None]
        rotations = [0, 1] if index < 2 else [0]
        for r in rotations:
            rotated = present[r:] + present[:r]
            letters = "ABCD"
            new_answer = letters[rotated.index(present["ABCD".index(answer)])]
            cells = rotated + [None] * (4 - len(rotated))
            idx = index + r * 1_000_000
            rows.append([idx, question, hint, *cells, new_answer, category, image, "src", "l2", None, "dev"])
            truth["mmbench"][idx] = {"answer": new_answer, "options": dict(zip("ABCD", cells)), "category": category}
    lines = ["\t".join(header)] + ["\t".join(_tsv_cell(v) for v in row) for row in rows]
    (d / "mmbench_dev_20230712.tsv").parent.mkdir(parents=True, exist_ok=True)
    (d / "mmbench_dev_20230712.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cn = ["\t".join(header), "\t".join(_tsv_cell(v) for v in [0, "这是什么动物？", None, "猫", "狗", None, None, "A", "属性",
                                                               _b64(photos[0]), "src", "l2", None, "dev"])]
    (d / "mmbench_dev_cn_20231003.tsv").write_text("\n".join(cn) + "\n", encoding="utf-8")


def build_textvqa(root: Path, photos: list[Image.Image], truth: dict) -> None:
    d = root / "textvqa"
    questions, data = [], []
    for n, (image_id, question, ocr, answers) in enumerate([
        ("003a8ae2ef43b901", "what brand is this camera?", "nikon, d90", ["nikon"] * 7 + ["nikon d90"] * 3),
        ("003a8ae2ef43b901", "what is the model?", "nikon, d90", ["d90"] * 10),
        ("00685bc495504d61", "what number is shown?", "12", ["12"] * 5 + ["twelve"] * 5),
    ]):
        _save(photos[n % len(photos)], d / "train_images" / f"{image_id}.jpg")
        questions.append({"question_id": image_id, "image": f"{image_id}.jpg",
                          "text": f"{question}\nReference OCR token: {ocr}\n{SHORT}"})
        data.append({"image_id": image_id, "question": question, "answers": answers, "question_id": 100 + n})
        truth["textvqa"].append(answers)
    _jsonl(d / "llava_textvqa_val_v051_ocr.jsonl", questions)
    _json(d / "TextVQA_0.5.1_val.json", {"data": data})


def build_vqav2(root: Path, photos: list[Image.Image], truth: dict) -> None:
    d = root / "vqav2"
    records = []
    for n in range(5):
        image = f"COCO_test2015_{n:012d}.jpg"
        records.append({"question_id": 262144000 + n, "image": image, "text": f"What is this?\n{SHORT}", "category": "default"})
        _save(photos[n % len(photos)], d / "test2015" / image)
    _jsonl(d / "llava_vqav2_mscoco_test2015.jsonl", records)
    _jsonl(d / "llava_vqav2_mscoco_test-dev2015.jsonl", records[:3])
    truth["vqav2"] = [r["question_id"] for r in records]


def build_vizwiz(root: Path, photos: list[Image.Image], truth: dict) -> None:
    d = root / "vizwiz"
    records = []
    for n in range(2):
        image = f"VizWiz_test_{n:08d}.jpg"
        _save(photos[n], d / "test" / image)
        records.append({"question_id": image, "image": image,
                        "text": "What is this?\nWhen the provided information is insufficient, respond with "
                                f"'Unanswerable'.\n{SHORT}"})
    _jsonl(d / "llava_test.jsonl", records)


def build_seed(root: Path, photos: list[Image.Image], truth: dict) -> None:
    d = root / "seed_bench"
    _save(photos[0], d / "SEED-Bench-image" / "101.jpg")
    _save(photos[1], d / "SEED-Bench-image" / "102.jpg")
    text = f"What is shown?\nA. cat\nB. dog\nC. car\nD. tree\n{CHOICE}"
    _jsonl(d / "llava-seed-bench.jsonl", [
        {"question_id": "101", "image": "SEED-Bench-image/101.jpg", "text": text},
        {"question_id": "102", "image": "SEED-Bench-image/102.jpg", "text": text},
        {"question_id": "900", "image": "SEED-Bench-video-image/900.png", "text": text},  # video: skipped
    ])
    _json(d / "SEED-Bench.json", {"question_type": {"Scene Understanding": 1, "Instance Identity": 2},
                                  "questions": [{"question_id": "101", "answer": "A", "data_type": "image", "question_type_id": 1},
                                                {"question_id": "102", "answer": "C", "data_type": "image", "question_type_id": 2},
                                                {"question_id": "900", "answer": "B", "data_type": "video", "question_type_id": 1}]})


def build_mmmu(root: Path, photos: list[Image.Image], truth: dict) -> None:
    d = root / "mmmu"
    _save(photos[0], d / "images" / "validation_Art_1.png")
    _save(photos[1], d / "images" / "validation_Math_2.png")
    _jsonl(d / "validation.jsonl", [
        {"id": "validation_Art_1", "question": "<image 1> Which style is this?", "options": "['Baroque', 'Cubism']",
         "answer": "B", "question_type": "multiple-choice", "image": "images/validation_Art_1.png"},
        {"id": "validation_Math_2", "question": "<image 1> What is x?", "options": "[]", "answer": "3.5",
         "question_type": "open", "image": "images/validation_Math_2.png"},
    ])


def build_llavabench(root: Path, photos: list[Image.Image], truth: dict) -> None:
    d = root / "llava-bench-in-the-wild"
    _save(photos[2], d / "images" / "001.jpg")
    _jsonl(d / "questions.jsonl", [{"question_id": 0, "image": "001.jpg", "text": "What is in the cup?", "category": "conv"},
                                   {"question_id": 1, "image": "001.jpg", "text": "Describe the image.", "category": "detail"}])
    _jsonl(d / "context.jsonl", [{"id": "001", "image": "001.jpg", "caption": ["A cup of coffee.", "On a saucer."]}])
    _jsonl(d / "answers_gpt4.jsonl", [{"question_id": 0, "text": "Coffee.", "answer_id": "ref0"},
                                      {"question_id": 1, "text": "A cup of coffee on a saucer.", "answer_id": "ref1"}])


def build_mmvet(root: Path, photos: list[Image.Image], truth: dict) -> None:
    d = root / "mm-vet"
    _save(photos[3], d / "images" / "v1_0.png")
    _jsonl(d / "llava-mm-vet.jsonl", [{"question_id": 0, "image": "v1_0.png", "text": "What is x in the equation?"}])
    _json(d / "mm-vet.json", {"v1_0": {"imagename": "v1_0.png", "capability": ["ocr", "math"],
                                       "question": "What is x in the equation?", "answer": "-1<AND>-5"}})


def build_synthetic(root: Path, truth: dict) -> None:
    from mqt_vlm.data.synthetic import SynthConfig, write_dataset

    write_dataset(root / "synthetic", SynthConfig(seed=3, n_images=10, image_size=64), progress=False)
    for name in ("test_questions.jsonl", "test_describe.jsonl"):
        for line in (root / "synthetic" / name).read_text().splitlines():
            record = json.loads(line)
            truth["synthetic"][record["question_id"]] = (record["answer"], record["question_type"])


BUILDERS = (build_pope, build_mme, build_gqa, build_scienceqa, build_mmbench, build_textvqa, build_vqav2,
            build_vizwiz, build_seed, build_mmmu, build_llavabench, build_mmvet)


@pytest.fixture(scope="session")
def eval_data(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, Image.Image]) -> tuple[Path, dict]:
    """(data root in LLaVA's playground/data/eval layout, the ground truth it was built from)."""
    root = tmp_path_factory.mktemp("eval_data")
    images = list(photos.values())
    truth: dict[str, Any] = {"pope": {}, "mme": [], "gqa": {}, "scienceqa": {}, "mmbench": {}, "textvqa": [],
                             "synthetic": {}}
    for build in BUILDERS:
        build(root, images, truth)
    build_synthetic(root, truth)
    return root, truth


