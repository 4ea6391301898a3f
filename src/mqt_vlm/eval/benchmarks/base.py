"""What every benchmark loader shares: the item type, the benchmark record, file readers and checks.

A loader turns one benchmark's files, in the layout LLaVA-1.5's evaluation scripts use under
`playground/data/eval`, into `EvalItem`s: the question text exactly as the model will see it (the
answer-format suffix included once), where the image is, and what the scorer needs. Scoring is a
separate pure function over (items, predictions), so a run can be re-scored from its prediction
files without touching the model.

Why loaders validate eagerly (every image exists, every question has its annotation): a sweep over
eight budgets can run for hours, and a missing file found at item 90,000 wastes all of it.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mqt_vlm.errors import MQTError

SHORT_ANSWER_SUFFIX = "Answer the question using a single word or phrase."
MULTIPLE_CHOICE_SUFFIX = "Answer with the option's letter from the given choices directly."
MULTIPLE_CHOICE_SUFFIX_CN = "请直接回答选项字母。"

# max_new_tokens as LLaVA-1.5's eval scripts set them: model_vqa_loader.py defaults to 128; the
# ScienceQA, MMBench and free-form (model_vqa.py) scripts hard-code 1024.
SHORT_ANSWER_MAX_NEW_TOKENS = 128
LONG_ANSWER_MAX_NEW_TOKENS = 1024


@dataclass(frozen=True)
class EmbeddedImage:
    """An image stored inside an annotation file (MMBench's base64 column), decoded on demand."""

    data: str  # base64 text
    name: str  # for error messages

    def to_bytes(self) -> bytes:
        try:
            return base64.b64decode(self.data, validate=False)
        except (ValueError, TypeError) as exc:
            raise MQTError(f"{self.name}: the embedded image is not valid base64 ({exc}).") from exc


ImageRef = Path | EmbeddedImage


@dataclass(frozen=True)
class EvalItem:
    """One question to ask. `key` is unique within its benchmark and names the prediction on disk."""

    key: str
    question_id: Any
    text: str  # the question as LLaVA feeds it after "<image>\n", suffix included
    image: ImageRef
    max_new_tokens: int
    subset: str = ""  # POPE split, MME task, question type...: what --limit and breakdowns group by
    meta: Mapping[str, Any] = field(default_factory=dict)  # what the scorer needs (answers, labels...)


Scorer = Callable[[Sequence[EvalItem], Mapping[str, str]], dict]
RowsFn = Callable[[dict], dict[str, float]]
Submitter = Callable[[Sequence[EvalItem], Mapping[str, str], Path, Path], list[Path]]  # (items, preds, data, out)
Limiter = Callable[[list[EvalItem], int], list[EvalItem]]


def first_n(items: list[EvalItem], n: int) -> list[EvalItem]:
    """The default `--limit`: the first n items in file order."""
    return items[:n]


def first_n_per_subset(items: list[EvalItem], n: int) -> list[EvalItem]:
    """`--limit` per subset (each POPE split gets n), keeping file order."""
    seen: Counter[str] = Counter()
    kept = []
    for item in items:
        if seen[item.subset] < n:
            kept.append(item)
            seen[item.subset] += 1
    return kept


@dataclass(frozen=True)
class Benchmark:
    """A benchmark family member: how to load it, score it and report it.

    `rows` maps the scorer's dict to the tidy rows of results.csv, in the paper's units (accuracies
    in percent, MME in points); `headline` names the rows that go into the table and the plots.
    `submit` writes server/judge files and returns their paths.
    """

    name: str
    display: str
    folder: str
    load: Callable[[Path], list[EvalItem]]
    score: Scorer | None
    rows: RowsFn
    headline: tuple[str, ...]
    submit: Submitter | None = None
    limit: Limiter = first_n
    source: str = ""  # the official scorer this follows, for the report
    judged: bool = False  # LLaVA-Bench / MM-Vet: scored by an LLM judge, see mqt_vlm.eval.judge
    locate: Callable[[Path], Path] | None = None  # data folder from --data-root (default: root/folder)

    def data_dir(self, root: Path) -> Path:
        """Where this benchmark's files live under `--data-root` (LLaVA's playground/data/eval)."""
        return self.locate(root) if self.locate is not None else root / self.folder


# ---- files -------------------------------------------------------------------------------------


def require_file(path: Path, what: str, hint: str = "") -> Path:
    """`path` if it is a file, else an MQTError saying what it should be and where it comes from."""
    if not path.is_file():
        where = f" ({hint})" if hint else ""
        raise MQTError(f"{what} not found: {path}{where}. See docs/evaluation.md for the layout.")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a .jsonl file; blank lines skipped, a bad line reported with its number."""
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise MQTError(f"{path}:{number} is not valid JSON ({exc.msg}).") from None
    if not records:
        raise MQTError(f"{path} holds no questions.")
    return records


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MQTError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}).") from None


def require_fields(record: Mapping[str, Any], fields: Sequence[str], where: str) -> None:
    missing = [name for name in fields if name not in record]
    if missing:
        raise MQTError(f"{where} lacks {missing}; expected fields {list(fields)}.")


def check_images(items: Sequence[EvalItem], benchmark: str) -> None:
    """Every image file exists, or one error naming the first few that do not."""
    missing = [item.image for item in items if isinstance(item.image, Path) and not item.image.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise MQTError(
            f"{benchmark}: {len(missing)} image file(s) missing: {shown}{more}. Download the benchmark's "
            "images into the folder docs/evaluation.md names."
        )


def unique_keys(question_ids: Sequence[Any]) -> list[str]:
    """Prediction keys: the question id, or `id#k` for its k-th repeat.

    Some LLaVA files reuse ids (TextVQA's `question_id` is the image id; MME's is the image path,
    shared by the image's two questions), and a resumable run needs one key per question.
    """
    seen: Counter[str] = Counter()
    keys = []
    for qid in question_ids:
        text = str(qid)
        keys.append(text if seen[text] == 0 else f"{text}#{seen[text]}")
        seen[text] += 1
    return keys


def with_suffix(text: str, suffix: str) -> str:
    """Append the answer-format suffix on its own line unless the question file already has it.

    LLaVA's question files for VQAv2, GQA, POPE, MME, SEED... already end with it; adding it twice
    would change the prompt the published numbers were measured with.
    """
    return text if suffix in text else f"{text}\n{suffix}"


def percent(value: float) -> float:
    return 100.0 * value
