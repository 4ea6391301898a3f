"""MMMU (validation): prompts and scoring as in the official MMMU evaluation code.

Sources: MMMU-Benchmark/MMMU eval/utils/data_utils.py (`construct_prompt` with the LLaVA-1.5 config:
"{question}\\n{(A) option\\n...}\\nAnswer with the option's letter from the given choices directly."
for multiple choice, "{question}\\nAnswer the question using a single word or phrase." for open
questions), eval/utils/model_utils.py (`call_llava_engine_df`: image_1 only, 128 new tokens) and
eval/utils/eval_utils.py (`parse_multi_choice_response`, `parse_open_response`, `eval_multi_choice`,
`eval_open`). Decoding here is greedy, like every other benchmark of the protocol.

Quirks reproduced: a multiple-choice answer with no recognisable option gets a *random* letter
(`random.choice`, seeded 42 once per scoring pass, drawn in question order as the official script
does); "(B)" beats " B "; several candidates -> the one mentioned last; option *texts* are matched
only when the answer has more than 5 words; open answers are compared after pulling out the text after
"is", "so", "answer", "=" ... and every number in it, numbers rounded to 2 decimals, one-letter strings
padded with a space.

Layout: `mmmu/validation.jsonl` (one MMMU record per line: id, question, options, answer,
question_type, and `image` = image_1's path relative to the folder; docs/evaluation.md shows the
export from the Hugging Face dataset), or the Hugging Face snapshot itself (`mmmu/<Subject>/
validation-*.parquet`, which needs pyarrow).
"""

from __future__ import annotations

import ast
import base64
import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.benchmarks.base import (
    MULTIPLE_CHOICE_SUFFIX,
    SHORT_ANSWER_MAX_NEW_TOKENS,
    SHORT_ANSWER_SUFFIX,
    Benchmark,
    EmbeddedImage,
    EvalItem,
    check_images,
    percent,
    read_jsonl,
    require_fields,
)

MMMU_SEED = 42
_STRIP_CHARS = (",", ".", "!", "?", ";", ":", "'")
_KEY_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")


def _literal(value: Any) -> Any:
    """MMMU stores lists as their Python text ("['a', 'b']"); the official code eval()s them."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def mmmu_prompt(question: str, options: Sequence[str], question_type: str) -> str:
    if question_type == "multiple-choice":
        example = "".join(f"({chr(ord('A') + i)}) {option}\n" for i, option in enumerate(options))
        return f"{question}\n{example}\n{MULTIPLE_CHOICE_SUFFIX}"
    return f"{question}\n{SHORT_ANSWER_SUFFIX}"


# ---- scoring (eval_utils.py) ---------------------------------------------------------------------


def parse_multi_choice(response: str, options: Sequence[str], rng: random.Random) -> str:
    letters = [chr(ord("A") + i) for i in range(len(options))]
    for char in _STRIP_CHARS:
        response = response.strip(char)
    response = f" {response} "
    by_index, bracketed = True, False
    candidates = [c for c in letters if f"({c})" in response]
    bracketed = bool(candidates)
    if not candidates:
        candidates = [c for c in letters if f" {c} " in response]
    if not candidates and len(response.split()) > 5:
        candidates = [c for c, text in zip(letters, options) if str(text).lower() in response.lower()]
        by_index = not candidates
    if not candidates:
        return rng.choice(letters)
    if len(candidates) == 1:
        return candidates[0]
    if not by_index:
        positions = [response.lower().rfind(str(options[letters.index(c)]).lower()) for c in candidates]
    elif bracketed:
        positions = [response.rfind(f"({c})") for c in candidates]
    else:
        positions = [response.rfind(f" {c} ") for c in candidates]
    return candidates[max(range(len(positions)), key=lambda i: (positions[i], -i))]


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
        return True
    except ValueError:
        return False


def normalize_answer(text: str) -> list[Any]:
    text = text.strip()
    if _is_number(text):
        return [round(float(text.replace(",", "")), 2)]
    text = text.lower()
    return [" " + text, text + " "] if len(text) == 1 else [text]


def extract_numbers(text: str) -> list[str]:
    with_commas = re.findall(r"-?\b\d{1,3}(?:,\d{3})+\b", text)
    scientific = re.findall(r"-?\d+(?:\.\d+)?[eE][+-]?\d+", text)
    simple = re.findall(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])", text)
    return with_commas + scientific + simple


def _key_responses(response: str) -> list[str]:
    response = response.strip().strip(".").lower()
    parts = re.split(r"\.\s(?=[A-Z])|\n", response)
    keys = []
    for index, part in enumerate(parts):
        indicators = list(_KEY_INDICATORS) + (["="] if index == len(parts) - 1 else [])
        shortest = None
        for indicator in indicators:
            if indicator in part:
                tail = part.split(indicator)[-1].strip()
                if shortest is None or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in (":", ",", ".", "!", "?", ";", "'"):
            keys.append(shortest)
    return keys or [response]


def parse_open(response: str) -> list[Any]:
    keys = _key_responses(response)
    candidates = list(keys)
    for key in keys:
        candidates.extend(extract_numbers(key))
    normalized = [value for candidate in candidates for value in normalize_answer(candidate)]
    return list(dict.fromkeys(normalized))


def open_correct(answer: Any, predicted: Sequence[Any]) -> bool:
    golds = answer if isinstance(answer, list) else [answer]
    normalized = [value for gold in golds for value in normalize_answer(str(gold))]
    for pred in predicted:
        if isinstance(pred, str):
            if any(isinstance(gold, str) and gold in pred for gold in normalized):
                return True
        elif pred in normalized:
            return True
    return False


def score_mmmu(items: Sequence[EvalItem], predictions: Mapping[str, str]) -> dict:
    """Accuracy over the questions run, and per subject (MMMU's `evaluate`)."""
    rng = random.Random(MMMU_SEED)
    per_subject: dict[str, list[int]] = {}
    for item in items:
        if item.key not in predictions:
            continue
        answer, response = item.meta["answer"], predictions[item.key]
        if item.meta["question_type"] == "multiple-choice":
            choice = parse_multi_choice(response, item.meta["options"], rng)
            hit = choice in answer if isinstance(answer, list) else choice == answer
        else:
            hit = open_correct(answer, parse_open(response))
        per_subject.setdefault(item.subset, []).append(int(hit))
    hits = [h for values in per_subject.values() for h in values]
    if not hits:
        raise MQTError("Nothing to score: no MMMU question has a prediction.")
    return {"accuracy": sum(hits) / len(hits), "total": len(hits),
            "subject": {name: sum(v) / len(v) for name, v in sorted(per_subject.items())}}


# ---- loading ------------------------------------------------------------------------------------


def _parquet_records(root: Path) -> list[dict[str, Any]]:
    files = sorted(root.glob("*/validation-*.parquet"))
    if not files:
        return []
    try:
        import pyarrow.parquet as pq  # optional: only the Hugging Face snapshot layout needs it
    except ImportError as exc:
        raise MQTError(
            f"{root} holds MMMU parquet files; reading them needs pyarrow (`pip install pyarrow`), or export "
            "validation.jsonl as docs/evaluation.md shows."
        ) from exc
    records = []
    for path in files:
        for row in pq.read_table(path).to_pylist():
            image = row.get("image_1") or {}
            row["image"] = EmbeddedImage(base64.b64encode(image.get("bytes") or b"").decode(), str(row.get("id")))
            records.append(row)
    return records


def load_mmmu(root: Path) -> list[EvalItem]:
    jsonl = root / "validation.jsonl"
    records = read_jsonl(jsonl) if jsonl.is_file() else _parquet_records(root)
    if not records:
        raise MQTError(f"MMMU not found: {jsonl} (or <Subject>/validation-*.parquet under {root}).")
    items = []
    for record in records:
        require_fields(record, ("id", "question", "options", "answer", "question_type", "image"), f"MMMU {record.get('id')}")
        options = _literal(record["options"]) or []
        image = record["image"] if isinstance(record["image"], EmbeddedImage) else root / record["image"]
        items.append(
            EvalItem(
                key=str(record["id"]), question_id=record["id"],
                text=mmmu_prompt(record["question"], options, record["question_type"]),
                image=image, max_new_tokens=SHORT_ANSWER_MAX_NEW_TOKENS,
                subset="_".join(str(record["id"]).split("_")[1:-1]) or "all",
                meta={"answer": _literal(record["answer"]), "options": list(options),
                      "question_type": record["question_type"]},
            )
        )
    check_images(items, "MMMU")
    return items


def mmmu_rows(metrics: dict) -> dict[str, float]:
    return {"accuracy": percent(metrics["accuracy"])}


BENCHMARKS = (
    Benchmark("mmmu", "MMMU", "mmmu", load_mmmu, score_mmmu, mmmu_rows, ("accuracy",),
              source="MMMU eval_utils.py (parse + eval, validation split)"),
)
