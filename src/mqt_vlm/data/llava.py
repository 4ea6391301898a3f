"""LLaVA-format conversation files: parsing, structural validation, and a lazy training dataset.

A file is a JSON list or JSON lines of records::

    {"id": "000123", "image": "coco/000123.jpg",            # "image" is optional (text-only)
     "conversations": [{"from": "human", "value": "<image>\\nWhat is this?"},
                       {"from": "gpt", "value": "A cat."}, ...]}

Turns alternate human, gpt, ... and end with a gpt turn; an image record has exactly one `<image>`,
in its first human turn, and a text-only record has none. Normalisation follows the released
training code: `plain` (stage 1) keeps only the image and the caption, and `vicuna_v1` moves the
placeholder to the front of the first question (`<image>\\n{question}`), the inference layout.

Images are opened in `__getitem__`, i.e. in DataLoader workers, never up front. Every image path
goes through `resolve_image`: the data file is input like any other, and a `../` or a symbolic link
must not make training read files outside the image folder.

Reading never lets one record hide the others: a line that is not UTF-8 or not JSON, a value nested
too deep for the parser, or a lone surrogate is a problem of that record; only a file that is not a
JSON list (or JSON lines) at all is one error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
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


def _printable(text: str) -> str:
    """`text` with lone surrogates (invalid UTF-8 bytes, or escapes such as \\ud800) written as escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _record_id(raw: Any, index: int) -> str:
    if isinstance(raw, dict) and raw.get("id") not in (None, "") and not isinstance(raw.get("id"), (dict, list)):
        return _printable(str(raw["id"]))
    return f"#{index}"


def _check_unicode(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start:exc.end]
        if all("\udc80" <= c <= "\udcff" for c in bad):  # bytes `_decode` could not read as UTF-8
            why = "bytes that are not UTF-8 (" + " ".join(f"0x{ord(c) - 0xDC00:02x}" for c in bad) + ")"
        else:
            why = f"a lone surrogate ({_printable(bad)}), which no UTF-8 text can hold"
        raise RecordError("bad_encoding", f"{where}, at character {exc.start}, has {why}; fix or drop the record") from None


def resolve_image(image_folder: Path | None, image: str, allow_absolute: bool = False) -> Path:
    """The file a record's `image` names, which must lie inside `image_folder` once `..` and symbolic
    links are resolved; absolute paths only with `allow_absolute` (--allow-absolute-paths).

    The one containment rule of `mqt data check` and of training: without it a data file could make
    the trainer open and decode any file the process can read (`../../etc/passwd`, `/root/.ssh/...`,
    or a link in the image folder pointing there).
    """
    path = Path(image)
    if path.is_absolute() and not allow_absolute:
        raise RecordError(
            "absolute_image_path",
            f"image {image!r} is an absolute path; paths must be relative to the image folder (pass "
            "--allow-absolute-paths, or data.allow_absolute_paths: true, if you trust the data file)",
        )
    if not path.is_absolute() and image_folder is None:
        raise RecordError("missing_image", f"record has image {image!r} but no image folder was given (--image-folder)")
    try:
        if path.is_absolute():
            return path.resolve()
        root = Path(image_folder).resolve()  # type: ignore[arg-type]
        target = (root / path).resolve()  # follows every symbolic link on the way
    except (OSError, ValueError, RuntimeError) as exc:  # NUL bytes, names too long, symlink loops
        raise RecordError("bad_image_field", f"image {image!r} is not a usable path ({exc})") from None
    if not target.is_relative_to(root):
        raise RecordError(
            "image_outside_folder",
            f"image {image!r} resolves to {target}, outside the image folder {root} (a '..' or a symbolic link "
            "leads out of it); copy the file into the folder",
        )
    return target


def parse_record(raw: Any, index: int) -> Record:
    """Validate the structure of one raw record; raises `RecordError` with a problem kind."""
    if not isinstance(raw, dict):
        raise RecordError("not_a_record", f"expected a JSON object, got {type(raw).__name__}")
    image = raw.get("image")
    if image is not None and (not isinstance(image, str) or not image.strip()):
        raise RecordError("bad_image_field", f"'image' must be one relative path (a string), got {image!r}")
    if image is not None:
        _check_unicode(image, "'image'")
    conversations = raw.get("conversations")
    if not isinstance(conversations, list) or not conversations:
        raise RecordError("no_conversations", "'conversations' must be a non-empty list of turns")
    turns: list[tuple[str, str]] = []
    for i, turn in enumerate(conversations):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise RecordError("bad_turn", f"turn {i} must be an object with 'from' and a string 'value'")
        _check_unicode(turn["value"], f"turn {i}")
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


_DEEP = "too_deep"
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_SKIP = re.compile(_STRING + r"|[\[\]{}]")  # a string, or a bracket
_SCALAR = re.compile(r"[^,\]]*")
_LEADING_ID = re.compile(r'\{\s*"id"\s*:\s*(' + _STRING + r"|-?\d{1,30})")


def _leading_id(text: str, start: int, fallback: str) -> str:
    """The id of a record that cannot be parsed, when it is written first (`{"id": ...`)."""
    match = _LEADING_ID.match(text, start)
    if match is None:
        return fallback
    try:
        return _printable(str(json.loads(match.group(1))))
    except ValueError:
        return fallback


def _skip_value(text: str, start: int) -> int:
    """End of the JSON value starting at `start`, found without recursion."""
    if not text.startswith(("[", "{"), start):
        return _SCALAR.match(text, start).end()  # type: ignore[union-attr]
    depth = 0
    for match in _SKIP.finditer(text, start):
        token = match.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
            if depth == 0:
                return match.end()
    raise ValueError("unterminated array or object")


def _decode(data: bytes) -> str:
    """UTF-8 text; undecodable bytes become lone surrogates, reported by the record that holds them."""
    return data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")


def _json_lines(text: str) -> Iterator[tuple[int, Any] | Problem]:
    decoder = json.JSONDecoder()
    index = 0
    for line_number, line in enumerate(text.split("\n"), start=1):  # not splitlines: U+2028 may sit in a string
        if not line.strip():
            continue
        where = f"line {line_number}"
        try:
            yield index, decoder.decode(line)
        except json.JSONDecodeError as exc:
            yield Problem(index, _leading_id(line, 0, where), "bad_json", f"{where}: {exc.msg} (column {exc.colno})")
        except RecursionError:
            yield Problem(index, _leading_id(line, 0, where), _DEEP, f"{where}: JSON nested too deep to parse")
        except ValueError as exc:  # e.g. an integer with more digits than Python converts
            yield Problem(index, _leading_id(line, 0, where), "bad_json", f"{where}: {exc}")
        index += 1


def _json_list_items(text: str, path: Path) -> Iterator[tuple[int, Any] | Problem]:
    """The elements of a JSON list one by one, for a file `json.loads` cannot take whole: an element
    nested too deep (or holding an unconvertible number) is skipped and reported, the rest are read."""
    decoder = json.JSONDecoder()
    whitespace = re.compile(r"\s*")

    def skip(pos: int) -> int:
        return whitespace.match(text, pos).end()  # type: ignore[union-attr]

    pos = skip(0)
    if not text.startswith("[", pos):
        raise MQTError(f"{path} must hold a JSON list of records (or use .jsonl).")
    pos, index = skip(pos + 1), 0
    while not text.startswith("]", pos):
        try:
            raw, pos = decoder.raw_decode(text, pos)
            yield index, raw
        except json.JSONDecodeError as exc:
            raise MQTError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None
        except (RecursionError, ValueError) as exc:
            kind, why = (_DEEP, "JSON nested too deep to parse") if isinstance(exc, RecursionError) else ("bad_json", str(exc))
            yield Problem(index, _leading_id(text, pos, f"#{index}"), kind, f"record {index}: {why}")
            try:
                pos = _skip_value(text, pos)
            except ValueError:
                raise MQTError(f"{path} is not valid JSON: record {index} never ends.") from None
        pos = skip(pos)
        if text.startswith(",", pos):
            pos = skip(pos + 1)
        elif not text.startswith("]", pos):
            raise MQTError(f"{path} is not valid JSON: expected ',' or ']' after record {index}.")
        index += 1


def read_raw(path: Path) -> list[tuple[int, Any] | Problem]:
    """Raw records of a `.json` list or `.jsonl` file; a record that cannot be parsed is a `Problem`.

    A file that is not a JSON list (or JSON lines) as a whole is an `MQTError` (nothing can be checked).
    """
    path = Path(path)
    if not path.is_file():
        raise MQTError(f"Data file {path} does not exist.")
    try:
        text = _decode(path.read_bytes())
    except OSError as exc:
        raise MQTError(f"Cannot read data file {path}: {exc.strerror or exc}.") from None
    if path.suffix == ".jsonl":
        return list(_json_lines(text))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MQTError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None
    except (RecursionError, ValueError):  # one record too deep or too big: read the others one by one
        return list(_json_list_items(text, path))
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
        allow_absolute_paths: bool = False,
    ) -> None:
        if not records:
            raise MQTError("The dataset has no usable records.")
        self.records = list(records)
        self.image_folder = Path(image_folder) if image_folder is not None else None
        self.processor = processor
        self.template = template
        self.skip_bad_samples = skip_bad_samples
        self.allow_absolute_paths = allow_absolute_paths

    def __len__(self) -> int:
        return len(self.records)

    def image_path(self, record: Record) -> Path:
        assert record.image is not None
        return resolve_image(self.image_folder, record.image, self.allow_absolute_paths)

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
