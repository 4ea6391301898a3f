"""Synthetic grid-VQA: questions, splits and files in the LLaVA layout.

Why it exists: to show that Matryoshka training works we need a task a tiny VLM can learn on CPU in
minutes, whose questions need *different amounts of visual detail*, so accuracy-versus-budget
curves have something to show. Four question types, from coarse to fine:

- `global`   "Is there a red shape?" -> yes/no. One glance at colour statistics is enough.
- `count`    "How many triangles are there?" -> "0".."N" (digits, always). Needs every object.
- `cell`     "What shape is in row 1, column 4?" -> shape/colour/"none". Needs one precise location.
- `relation` "What colour is the shape left of the blue circle?" -> shape/colour. Needs two objects
  and their layout. "left of X" means the nearest object in X's row with a smaller column
  ("right of": larger column; "above": same column, smaller row; "below": larger row). Only asked
  when X's (colour, shape) is unique in the scene and such a neighbour exists.

Rows and columns are 1-based everywhere (scene graph, questions, captions). Answers are single
lower-case words. The yes/no answer is fixed before the question is chosen, and `write_dataset`
steers it so each split holds as many "yes" as "no" (within one or two).

Files written by `write_dataset(DIR, config)`:
`images/NNNNNN.png`, `captions_train.json` (stage 1: human "<image>", gpt caption),
`train.json` / `val.json` / `test.json` (stage 2, one LLaVA conversation per question, plus
`question_type`, `answer`, `question`, `image_index` fields), `val_questions.jsonl` /
`test_questions.jsonl` (LLaVA eval layout: question_id, image, text, answer, question_type),
`scenes.json` (every scene graph, so answers can be re-derived) and `meta.json`.
Describe-every-cell (`describe_scene`, "row 1, column 1: none. row 1, column 2: red circle. ..."):
`describe_train.json` (stage-1 captions, human "<image>") and `val_describe.jsonl` /
`test_describe.jsonl` (one `DESCRIBE_PROMPT` per image, answer = the description, question_type
"describe"), scored per cell by the synthetic benchmark.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mqt_vlm.data.synthetic_scene import (
    QUESTION_TYPES,
    Scene,
    SceneObject,
    SynthConfig,
    caption_for_scene,
    describe_scene,
    generate_scene,
    parse_description,
    render_scene,
    scene_rng,
)

__all__ = [
    "DESCRIBE_PROMPT",
    "QUESTION_TYPES",
    "Question",
    "Scene",
    "SceneObject",
    "SynthConfig",
    "answer_vocabulary",
    "assign_splits",
    "caption_for_scene",
    "describe_scene",
    "generate_scene",
    "parse_description",
    "questions_for_scene",
    "render_scene",
    "scene_rng",
    "synth",
    "write_dataset",
    "write_parquet",
]

SPLITS: tuple[str, ...] = ("train", "val", "test")
DESCRIBE_PROMPT = "Describe every cell."
# (row step, column step) to walk from the referent towards the answer object.
DIRECTIONS: dict[str, tuple[int, int]] = {
    "left of": (0, -1),
    "right of": (0, 1),
    "above": (-1, 0),
    "below": (1, 0),
}
_PLURAL = {"cross": "crosses"}
_DUPLICATE_RETRIES = 4

# A descriptor picks out objects: (colour, shape), where "" means "any".
Descriptor = tuple[str, str]


@dataclass(frozen=True)
class Question:
    """One question about one scene; `type` is one of QUESTION_TYPES."""

    text: str
    answer: str
    type: str


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _descriptors(config: SynthConfig, kind: str) -> list[Descriptor]:
    """All descriptors of one kind, in config order (lists, not sets, to keep draws deterministic)."""
    if kind == "colour":
        return [(c, "") for c in config.colours]
    if kind == "shape":
        return [("", s) for s in config.shapes]
    return [(c, s) for c in config.colours for s in config.shapes]


def _matches(obj: SceneObject, d: Descriptor) -> bool:
    return (not d[0] or obj.colour == d[0]) and (not d[1] or obj.shape == d[1])


def _phrase(d: Descriptor, plural: bool) -> str:
    """'red shape' / 'triangle' / 'red triangle', pluralised for count questions."""
    noun = d[1] or "shape"
    if plural:
        noun = _PLURAL.get(noun, noun + "s")
    return f"{d[0]} {noun}" if d[0] else noun


def _global_question(scene: Scene, rng: random.Random, config: SynthConfig, want_yes: bool) -> Question | None:
    kinds = ["colour", "shape", "both"]
    rng.shuffle(kinds)
    # Try the drawn answer first; fall back to the other only if no descriptor can give it.
    for yes in (want_yes, not want_yes):
        for kind in kinds:
            pool = [d for d in _descriptors(config, kind) if any(_matches(o, d) for o in scene.objects) == yes]
            if pool:
                phrase = _phrase(rng.choice(pool), plural=False)
                return Question(f"Is there {_article(phrase)} {phrase}?", "yes" if yes else "no", "global")
    return None


def _count_question(scene: Scene, rng: random.Random, config: SynthConfig) -> Question | None:
    candidates = _descriptors(config, rng.choice(["colour", "shape", "both"]))
    present = [d for d in candidates if any(_matches(o, d) for o in scene.objects)]
    # Half the time ask about something present, so answers are not dominated by "0".
    pool = present if present and rng.random() < 0.5 else candidates
    d = rng.choice(pool)
    count = sum(_matches(o, d) for o in scene.objects)
    return Question(f"How many {_phrase(d, plural=True)} are there?", str(count), "count")


def _cell_text(attr: str, row: int, col: int) -> str:
    if attr == "colour":
        return f"What colour is the shape in row {row}, column {col}?"
    return f"What shape is in row {row}, column {col}?"


def _cell_question(scene: Scene, rng: random.Random, config: SynthConfig) -> Question | None:
    occupied = {(o.row, o.col) for o in scene.objects}
    cells = range(1, scene.grid + 1)
    empty = [(r, c) for r in cells for c in cells if (r, c) not in occupied]
    attr = rng.choice(["colour", "shape"])
    if empty and (not scene.objects or rng.random() < config.empty_cell_prob):
        row, col = rng.choice(empty)
        return Question(_cell_text(attr, row, col), "none", "cell")
    obj = rng.choice(scene.objects)
    return Question(_cell_text(attr, obj.row, obj.col), getattr(obj, attr), "cell")


def _neighbour(scene: Scene, obj: SceneObject, step: tuple[int, int]) -> SceneObject | None:
    """The nearest object from `obj` walking in direction `step`, or None at the grid edge."""
    row, col = obj.row + step[0], obj.col + step[1]
    while 1 <= row <= scene.grid and 1 <= col <= scene.grid:
        found = scene.at(row, col)
        if found is not None:
            return found
        row, col = row + step[0], col + step[1]
    return None


def _relation_question(scene: Scene, rng: random.Random, config: SynthConfig) -> Question | None:
    kinds = Counter((o.colour, o.shape) for o in scene.objects)
    candidates = [
        (ref, direction, other)
        for ref in scene.objects
        if kinds[(ref.colour, ref.shape)] == 1  # the referent must be unambiguous
        for direction, step in DIRECTIONS.items()
        if (other := _neighbour(scene, ref, step)) is not None
    ]
    if not candidates:
        return None
    ref, direction, other = rng.choice(candidates)
    attr = rng.choice(["colour", "shape"])
    subject = "What colour is the shape" if attr == "colour" else "What shape is"
    return Question(f"{subject} {direction} the {ref.colour} {ref.shape}?", getattr(other, attr), "relation")


_GENERATORS: dict[str, Callable[[Scene, random.Random, SynthConfig], Question | None]] = {
    "count": _count_question,
    "cell": _cell_question,
    "relation": _relation_question,
}


def questions_for_scene(
    scene: Scene, rng: random.Random, config: SynthConfig, first_yes: bool | None = None
) -> list[Question]:
    """Up to `questions_per_image` distinct questions, cycling through the configured types.

    Types rotate from a random start so each type gets an equal share overall; a type that is
    impossible for this scene (e.g. no relation with a unique referent) yields its slot to the next.
    Fewer questions come back only if the scene cannot supply enough distinct ones.

    yes/no answers alternate within a scene, starting from `first_yes` (a coin flip if None).
    `write_dataset` passes whichever answer its split is short of, so splits balance exactly
    instead of drifting by the coin's noise (about 2% at a thousand images).
    """
    types = config.question_types
    start = rng.randrange(len(types))
    coin = rng.random() < 0.5  # drawn even when unused, so first_yes changes nothing else
    want_yes = coin if first_yes is None else first_yes
    questions: list[Question] = []
    seen: set[str] = set()
    for k in range(config.questions_per_image):
        first = (start + k) % len(types)
        chosen: Question | None = None
        for qtype in types[first:] + types[:first]:
            for _ in range(_DUPLICATE_RETRIES):
                if qtype == "global":
                    q = _global_question(scene, rng, config, want_yes)
                else:
                    q = _GENERATORS[qtype](scene, rng, config)
                if q is None:
                    break
                if q.text not in seen:
                    chosen = q
                    break
            if chosen is not None:
                break
        if chosen is not None:
            seen.add(chosen.text)
            questions.append(chosen)
            if chosen.type == "global":
                want_yes = chosen.answer != "yes"
    return questions


def answer_vocabulary(config: SynthConfig) -> dict[str, list[str]]:
    """Every answer each question type can give (the closed set a scorer can match against)."""
    counts = [str(i) for i in range(config.object_range[1] + 1)]
    attrs = [*config.colours, *config.shapes]
    return {"global": ["yes", "no"], "count": counts, "cell": [*attrs, "none"], "relation": attrs}


def assign_splits(config: SynthConfig) -> list[str]:
    """The split name of each image index; a seeded shuffle so splits are disjoint by image."""
    n = config.n_images
    n_val, n_test = round(n * config.val_fraction), round(n * config.test_fraction)
    while n > 1 and n_val + n_test >= n:  # rounding must never empty the training split
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    order = list(range(n))
    random.Random(f"mqt-synth:{config.seed}:splits").shuffle(order)
    names = ["train"] * n
    for i in order[:n_test]:
        names[i] = "test"
    for i in order[n_test : n_test + n_val]:
        names[i] = "val"
    return names


def _question_record(qid: str, image: str, index: int, q: Question) -> dict[str, Any]:
    return {
        "id": qid,
        "image": image,
        "conversations": [{"from": "human", "value": "<image>\n" + q.text}, {"from": "gpt", "value": q.answer}],
        "question_type": q.type,
        "answer": q.answer,
        "question": q.text,
        "image_index": index,
    }


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def write_dataset(out_dir: str | Path, config: SynthConfig, progress: bool = True) -> dict[str, Any]:
    """Generate, render and write the whole dataset; return the summary also saved as meta.json.

    Each image depends only on (seed, index), so output is byte-identical for the same config.
    Files already in `out_dir` are overwritten, not deleted.
    """
    from tqdm import tqdm  # lazily: keeps `mqt --help` from paying for it

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    split_of = assign_splits(config)
    width = max(6, len(str(config.n_images - 1)))
    records: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    captions: list[dict[str, Any]] = []
    describes: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    scenes: list[dict[str, Any]] = []
    yes_minus_no = {s: 0 for s in SPLITS}  # per split, to steer yes/no balance
    for index in tqdm(range(config.n_images), desc="synth", disable=not progress):
        name = f"{index:0{width}d}"
        image = f"images/{name}.png"
        scene = generate_scene(scene_rng(config.seed, index, "scene"), config)
        render_scene(scene, config).save(out / image, format="PNG")
        split = split_of[index]
        scenes.append({"index": index, "image": image, "split": split, **scene.to_dict()})
        if split == "train":
            caption = caption_for_scene(scene)
            captions.append(
                {
                    "id": f"synth-{name}-caption",
                    "image": image,
                    "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": caption}],
                    "caption": caption,
                    "image_index": index,
                }
            )
        describes[split].append({"id": f"synth-{name}-describe", "image": image, "description": describe_scene(scene),
                                 "image_index": index})
        q_rng = scene_rng(config.seed, index, "questions")
        questions = questions_for_scene(scene, q_rng, config, first_yes=yes_minus_no[split] <= 0)
        for k, q in enumerate(questions):
            records[split].append(_question_record(f"synth-{name}-q{k}", image, index, q))
            if q.type == "global":
                yes_minus_no[split] += 1 if q.answer == "yes" else -1

    _write_json(out / "captions_train.json", captions)
    _write_json(out / "describe_train.json", [
        {"id": d["id"], "image": d["image"], "image_index": d["image_index"], "conversations": [
            {"from": "human", "value": "<image>"}, {"from": "gpt", "value": d["description"]}]}
        for d in describes["train"]])
    for split in ("val", "test"):
        lines = [json.dumps({"question_id": d["id"], "image": d["image"], "text": DESCRIBE_PROMPT,
                             "answer": d["description"], "question_type": "describe"}) for d in describes[split]]
        (out / f"{split}_describe.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    for split in SPLITS:
        _write_json(out / f"{split}.json", records[split])
    for split in ("val", "test"):
        lines = [
            json.dumps(
                {
                    "question_id": r["id"],
                    "image": r["image"],
                    "text": r["question"],
                    "answer": r["answer"],
                    "question_type": r["question_type"],
                },
                ensure_ascii=False,
            )
            for r in records[split]
        ]
        (out / f"{split}_questions.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    _write_json(out / "scenes.json", scenes)

    every = [r for split in SPLITS for r in records[split]]
    vocab = answer_vocabulary(config)
    meta: dict[str, Any] = {
        "generator": "mqt_vlm.data.synthetic",
        "format_version": 1,
        "seed": config.seed,
        "n_images": config.n_images,
        "grid": config.grid,
        "image_size": config.image_size,
        "config": asdict(config),
        "splits": {
            s: {"images": split_of.count(s), "questions": len(records[s])} for s in SPLITS
        },
        "captions": len(captions),
        "question_types": dict(sorted(Counter(r["question_type"] for r in every).items())),
        "answer_counts": dict(sorted(Counter(r["answer"] for r in every).items())),
        "answer_vocabulary": list(dict.fromkeys(a for t in QUESTION_TYPES for a in vocab[t])),
        "answers_by_type": vocab,
    }
    _write_json(out / "meta.json", meta)
    return meta


def write_parquet(out_dir: str | Path, split: str = "test") -> Path:
    """`{split}.parquet` from a written dataset: the split's questions then its describe items (the
    order `mqt eval` reads them), PNG bytes embedded, and `choices`, the closed answer set of each
    question type (empty for describe), so lmms-eval's offline parquet tasks can run the split.
    The Hugging Face features metadata makes `datasets` decode `image` as an Image column."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        from mqt_vlm.errors import MQTError

        raise MQTError("Writing parquet needs pyarrow: pip install pyarrow.") from None
    out = Path(out_dir)
    by_type = json.loads((out / "meta.json").read_text(encoding="utf-8"))["answers_by_type"]
    records = []
    for name in (f"{split}_questions.jsonl", f"{split}_describe.jsonl"):
        lines = (out / name).read_text(encoding="utf-8").splitlines()
        records += [json.loads(line) for line in lines if line.strip()]
    string, features = pa.string(), {"_type": "Value", "dtype": "string"}
    schema = pa.schema(
        [("question_id", string), ("image", pa.struct([("bytes", pa.binary()), ("path", string)])),
         ("question", string), ("answer", string), ("question_type", string), ("choices", pa.list_(string))],
        metadata={"huggingface": json.dumps({"info": {"features": {
            "question_id": features, "image": {"_type": "Image"}, "question": features, "answer": features,
            "question_type": features, "choices": {"_type": "List", "feature": features}}}})},
    )
    table = pa.Table.from_pylist([
        {"question_id": r["question_id"], "image": {"bytes": (out / r["image"]).read_bytes(), "path": r["image"]},
         "question": r["text"], "answer": r["answer"], "question_type": r["question_type"],
         "choices": by_type.get(r["question_type"], [])}
        for r in records], schema=schema)
    path = out / f"{split}.parquet"
    pq.write_table(table, path)
    return path


def synth(out: Path, seed: int = 0, n: int = 1000, grid: int = 4, image_size: int = 64, parquet: bool = False) -> None:
    """Write a synthetic grid-VQA dataset (LLaVA format) to OUT: images, captions, train/val/test.

    Every image is a GRID x GRID board of coloured shapes; questions ask about presence, counts,
    single cells and neighbours, so small visual-token budgets visibly lose the fine-grained ones.
    The same SEED always gives byte-identical files. --parquet also writes OUT/test.parquet (needs
    pyarrow) for lmms-eval's offline tasks (docs/evaluation.md).
    """
    meta = write_dataset(out, SynthConfig(seed=seed, n_images=n, grid=grid, image_size=image_size))
    splits = meta["splits"].items()
    sizes = ", ".join(f"{s}: {v['images']} images / {v['questions']} questions" for s, v in splits)
    print(f"wrote {out} ({sizes}; {len(meta['answer_vocabulary'])} possible answers)")
    if parquet:
        print(f"wrote {write_parquet(out)}")
