"""LLaVA-format conversation files: parsing, structural validation, and a lazy training dataset.

A file is a JSON list or JSON lines of records::

    {"id": "000123", "image": "coco/000123.jpg",            # "image" is optional (text-only)
     "conversations": [{"from": "human", "value": "<image>\\nWhat is this?"},
                       {"from": "gpt", "value": "A cat."}, ...]}

Turns alternate human, gpt, ... and end with a gpt turn; an image record has exactly one `<image>`,
in its first human turn, and a text-only record has none. Normalisation follows the released
training code: `plain` (stage 1) keeps only the image and the caption, and `vicuna_v1` moves the
placeholder to the front of the first question (`<image>\\n{question}`), the inference layout.

Images are opened in `__getitem__`, i.e. in DataLoader workers, never up front.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from mqt_vlm.data.encode import EncodedSample, encode_segments
from mqt_vlm.errors import MQTError
from mqt_vlm.processing.images import load_image
from mqt_vlm.processing.templates import IMAGE_TOKEN, render

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


@dataclass(frozen=True)
class Record:
    """One validated conversation. `index` is its position in the file (line number - 1 for jsonl)."""

    index: int
    id: str
    image: str | None
    turns: tuple[tuple[str, str], ...]  # (user|assistant, text) as written in the file


@dataclass(frozen=True)
class Problem:
    """Why a record cannot be trained on. `kind` is a short stable name used in summaries."""

    index: int
    id: str
    kind: str
    message: str


class RecordError(MQTError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _record_id(raw: Any, index: int) -> str:
    if isinstance(raw, dict) and raw.get("id") not in (None, ""):
        return str(raw["id"])
    return f"#{index}"


def parse_record(raw: Any, index: int) -> Record:
    """Validate the structure of one raw record; raises `RecordError` with a problem kind."""
    if not isinstance(raw, dict):
        raise RecordError("not_a_record", f"expected a JSON object, got {type(raw).__name__}")
    image = raw.get("image")
    if image is not None and (not isinstance(image, str) or not image.strip()):
        raise RecordError("bad_image_field", f"'image' must be one relative path (a string), got {image!r}")
    conversations = raw.get("conversations")
    if not isinstance(conversations, list) or not conversations:
        raise RecordError("no_conversations", "'conversations' must be a non-empty list of turns")
    turns: list[tuple[str, str]] = []
    for i, turn in enumerate(conversations):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise RecordError("bad_turn", f"turn {i} must be an object with 'from' and a string 'value'")
        role = ROLES.get(str(turn.get("from", "")).lower())
        if role is None:
            raise RecordError("bad_turn", f"turn {i} has 'from': {turn.get('from')!r}; use 'human' or 'gpt'")
        if role != ("user" if i % 2 == 0 else "assistant"):
            raise RecordError("non_alternating", f"turn {i} is from {turn.get('from')!r}; turns must alternate human, gpt, ...")
        if not turn["value"].strip():
            raise RecordError("empty_turn", f"turn {i} ({turn.get('from')}) is empty")
        turns.append((role, turn["value"]))
    if turns[-1][0] != "assistant":
        raise RecordError("non_alternating", "the conversation ends with a human turn, which has no answer to learn")
    counts = [text.count(IMAGE_TOKEN) for _, text in turns]
    if image is not None:
        if sum(counts) != 1 or counts[0] != 1:
            where = f"{sum(counts)} in total" if sum(counts) != 1 else "not in the first human turn"
            raise RecordError("image_placeholder", f"an image record needs exactly one {IMAGE_TOKEN} in its first human turn ({where})")
    elif sum(counts):
        raise RecordError("image_placeholder", f"a text-only record has {sum(counts)} {IMAGE_TOKEN} placeholder(s)")
    return Record(index, _record_id(raw, index), image, tuple(turns))


def read_raw(path: Path) -> list[tuple[int, Any] | Problem]:
    """Raw records of a `.json` list or `.jsonl` file; unparsable jsonl lines become problems.

    A `.json` file that is not valid JSON as a whole is an `MQTError` (nothing can be checked).
    """
    path = Path(path)
    if not path.is_file():
        raise MQTError(f"Data file {path} does not exist.")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        out: list[tuple[int, Any] | Problem] = []
        index = 0
        for line_number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                out.append((index, json.loads(line)))
            except json.JSONDecodeError as exc:
                out.append(Problem(index, f"line {line_number}", "bad_json", f"line {line_number}: {exc.msg} (column {exc.colno})"))
            index += 1
        return out
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MQTError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from exc
    if not isinstance(data, list):
        raise MQTError(f"{path} must hold a JSON list of records (or use .jsonl), got {type(data).__name__}.")
    return list(enumerate(data))


def read_records(path: Path) -> tuple[list[Record], list[Problem]]:
    """Structurally valid records and the problems of the others, in file order."""
    records: list[Record] = []
    problems: list[Problem] = []
    for item in read_raw(path):
        if isinstance(item, Problem):
            problems.append(item)
            continue
        index, raw = item
        try:
            records.append(parse_record(raw, index))
        except RecordError as exc:
            problems.append(Problem(index, _record_id(raw, index), exc.kind, str(exc)))
    return records, problems


def conversation_turns(record: Record, template: str) -> list[tuple[str, str]]:
    """The turns a template trains on, normalised as the released code does."""
    turns = list(record.turns)
    if template == "plain":
        if record.image is None or len(turns) != 2:
            raise RecordError("template", "template 'plain' needs an image and exactly one human/gpt exchange (a caption)")
        return [("user", IMAGE_TOKEN), ("assistant", turns[1][1])]
    if record.image is not None:
        question = turns[0][1].replace(IMAGE_TOKEN, "").strip()
        turns[0] = ("user", f"{IMAGE_TOKEN}\n{question}")
    return turns


def encode_record(record: Record, template: str, processor: Any) -> EncodedSample:
    """Token ids and labels of a record with one image placeholder (see `data.encode`)."""
    segments = render(conversation_turns(record, template), template, processor.tokenizer)
    return encode_segments(segments, processor.tokenizer, processor.image_token_id, processor.image_token)


def approximate_length(record: Record, num_visual_tokens: int) -> int:
    """A cheap length for grouping batches (words + image tokens), as LLaVA's modality grouping uses."""
    words = sum(len(text.split()) for _, text in record.turns)
    return words + (num_visual_tokens if record.image is not None else 0)


class LlavaDataset(Dataset):
    """Records -> {index, id, sample: EncodedSample, pixel_values: [3, H, W] | None, substituted}.

    With `skip_bad_samples`, an image that fails to load here (after the start-up checks passed)
    is replaced by the next loadable record and reported in `substituted`, so batch shapes and the
    data order stay deterministic and the trainer can count and log the skip.
    """

    def __init__(
        self,
        records: Sequence[Record],
        image_folder: Path | None,
        processor: Any,
        template: str,
        skip_bad_samples: bool = False,
    ) -> None:
        if not records:
            raise MQTError("The dataset has no usable records.")
        self.records = list(records)
        self.image_folder = Path(image_folder) if image_folder is not None else None
        self.processor = processor
        self.template = template
        self.skip_bad_samples = skip_bad_samples

    def __len__(self) -> int:
        return len(self.records)

    def image_path(self, record: Record) -> Path:
        assert record.image is not None
        if self.image_folder is None:
            raise MQTError(f"Record {record.id} has an image but no image folder was given (--image-folder).")
        return self.image_folder / record.image

    def load(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        sample = encode_record(record, self.template, self.processor)
        pixel_values: torch.Tensor | None = None
        if record.image is not None:
            image = load_image(self.image_path(record), name=f"image {record.image} of record {record.id}")
            pixel_values = self.processor.image_processor([image])["pixel_values"][0]  # [3, H, W]
        return {"index": index, "id": record.id, "sample": sample, "pixel_values": pixel_values, "substituted": []}

    def __getitem__(self, index: int) -> dict[str, Any]:
        substituted: list[str] = []
        for attempt in range(len(self.records)):
            candidate = (index + attempt) % len(self.records)
            try:
                item = self.load(candidate)
            except MQTError as exc:
                if not self.skip_bad_samples:
                    raise MQTError(f"Record {self.records[candidate].id}: {exc} (use --skip-bad-samples to skip it).") from exc
                substituted.append(self.records[candidate].id)
                continue
            item["substituted"] = substituted
            return item
        raise MQTError("No record of the dataset could be loaded.")
