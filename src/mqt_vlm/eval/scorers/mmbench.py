"""MMBench option extraction and circular accuracy, reproducing the rule-based MMBench evaluation.

Sources: open-compass/VLMEvalKit vlmeval/utils/matching_util.py (`can_infer`, `can_infer_option`,
`can_infer_text`, the version without the later answer-length guard and letter-position check) and
vlmeval/evaluate/multiple_choice.py (`prefetch_sub_data`, `eval_data_groups`, `report_acc`) run in
its `exact_matching` mode, i.e. with no GPT judge. The MMBench server (whose numbers LLaVA-1.5 reports)
runs the same rules first and only asks ChatGPT when they fail; LLaVA's "answer with the option's
letter" prompt makes that fallback rare, and here such a question simply counts as wrong.

`mmbench_choice` rules:
1. `can_infer_option`: an answer holding one of the refusal phrases (e.g. "Cannot determine the
   answer") is "Z". Otherwise replace each of `.()[],:;!*#{}` with a space, split on whitespace, and
   count which option letters appear as whole tokens: exactly one -> that letter; none but a "Z"
   token -> "Z"; otherwise no decision.
2. `can_infer_text`: lower-case both sides; if exactly one option's text is a substring of the
   answer -> that letter.
3. Otherwise None (the original returns False).

Quirks reproduced: the article in "A dog" is read as option A; "The answer is A" gives A but
"a" / "(a)" (lower case) give nothing from rule 1; two letters ("A or B", "A\\nB") give nothing from
rule 1 and fall through to rule 2; an option text that is part of another ("red" in "red car") makes
rule 2 ambiguous; "Z" is a legal return meaning "none of the options" (never correct).

Circular evaluation: every MMBench question comes with rotated copies whose `index` differs by
multiples of 1,000,000 (same `index % 1_000_000`). A question counts as correct only if every copy
present is answered correctly; only groups whose original (index < 1,000,000) is present are scored.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence

from mqt_vlm.errors import MQTError

CIRCULAR_OFFSET = 1_000_000
_REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_API_FAILURE = "Failed to obtain answer via API"
_SEPARATORS = ".()[],:;!*#{}"


def _present_options(options: Mapping[str, object]) -> dict[str, str]:
    """Drop options that are absent in the TSV sense (None, NaN, empty), like `build_choices`."""
    present = {}
    for letter, text in options.items():
        if letter not in string.ascii_uppercase or len(letter) != 1:
            raise MQTError(f"MMBench option keys are single capital letters, got {letter!r}.")
        if text is None or (isinstance(text, float) and math.isnan(text)) or text == "":
            continue
        present[letter] = str(text)
    return present


def _infer_option(answer: str, letters: Sequence[str]) -> str | None:
    if _API_FAILURE in answer:
        return None
    if any(refusal in answer for refusal in _REFUSALS):
        return "Z"
    for separator in _SEPARATORS:
        answer = answer.replace(separator, " ")
    tokens = answer.split()
    found = [letter for letter in letters if letter in tokens]
    if len(found) == 1:
        return found[0]
    if not found and "Z" in tokens:
        return "Z"
    return None


def _infer_text(answer: str, options: Mapping[str, str]) -> str | None:
    lowered = answer.lower()
    found = [letter for letter, text in options.items() if text.lower() in lowered]
    return found[0] if len(found) == 1 else None


def mmbench_choice(prediction: str, options: dict[str, str]) -> str | None:
    """The option letter (or "Z") the rule-based MMBench matcher reads from `prediction`, else None.

    `options` maps letters to option texts; None / NaN / "" texts count as absent options.
    """
    present = _present_options(options)
    answer = str(prediction)
    return _infer_option(answer, list(present)) or _infer_text(answer, present)


def _record_options(record: Mapping[str, object]) -> dict[str, str]:
    return _present_options({k: v for k, v in record.items() if len(k) == 1 and k in string.ascii_uppercase})


def mmbench_circular_accuracy(records: list[dict]) -> dict:
    """Circular accuracy over MMBench rows (fractions in [0, 1]), plus per-category accuracy.

    Each record is one MMBench TSV row with the model's answer added:
      "index": int — circular copies share `index % 1_000_000`; the original has index < 1_000_000;
      "prediction": str — the raw model answer;
      "answer": str — the correct letter for this copy's option order;
      "A", "B", ... : str — the option texts (missing / None / NaN / "" = no such option);
      "category", "l2-category": str — optional; read from the original row for the breakdowns.
    Returns {"accuracy", "correct", "total", "hits": {index: 0|1}, "category": {...},
    "l2-category": {...}} (breakdowns only for fields present).
    """
    by_index: dict[int, Mapping[str, object]] = {}
    for i, record in enumerate(records):
        for field in ("index", "prediction", "answer"):
            if field not in record:
                raise MQTError(f"MMBench record {i} lacks {field!r}; see the docstring for the fields.")
        index = int(record["index"])  # type: ignore[call-overload]
        if index in by_index:
            raise MQTError(f"MMBench index {index} appears twice; each row must be scored once.")
        by_index[index] = record
    groups: dict[int, list[int]] = {}
    for index in sorted(by_index):
        groups.setdefault(index % CIRCULAR_OFFSET, []).append(index)
    mains = sorted(index for index in by_index if index < CIRCULAR_OFFSET)
    if not mains:
        raise MQTError("No MMBench record has an original index (< 1,000,000); nothing to score.")

    hits: dict[int, int] = {}
    for main in mains:
        hit = 1
        for index in groups[main]:
            record = by_index[index]
            choice = mmbench_choice(str(record["prediction"]), _record_options(record))
            if choice != record["answer"]:
                hit = 0
                break
        hits[main] = hit

    result: dict = {
        "accuracy": sum(hits.values()) / len(hits),
        "correct": sum(hits.values()),
        "total": len(hits),
        "hits": hits,
    }
    for field in ("category", "l2-category"):
        if any(field in by_index[main] for main in mains):
            per: dict[str, list[int]] = {}
            for main in mains:
                per.setdefault(str(by_index[main].get(field)), []).append(hits[main])
            result[field] = {name: sum(v) / len(v) for name, v in sorted(per.items())}
    return result
