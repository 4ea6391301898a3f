"""MMBench option extraction and circular accuracy, reproducing the rule-based MMBench evaluation.

Source: open-compass/opencompass tools/eval_mmbench.py, commit 6ca2be6626297b06088f0c4aabcfc30426341d78
(2023-08-07, "Add scripts to evaluate MMBench"): `can_infer_option`, `can_infer_text`, `can_infer`,
`build_choices`, `prefetch_answer`, `eval_sub_data` and `eval_result`. That is the MMBench team's
evaluation of the dev split from the time LLaVA-1.5 was scored (LLaVA uploads an .xlsx through
scripts/convert_mmbench_for_submission.py). It runs these rules first and only asks ChatGPT
(gpt-3.5-turbo-0613) when they fail, with a random letter after three failed tries; LLaVA's "answer
with the option's letter" prompt makes that fallback rare, and here such a question counts as wrong.
Later VLMEvalKit versions changed the rules (refusal phrases -> "Z", separators stripped, ...); they
are not what this reproduces.

`mmbench_choice` rules, first decision wins:
1. `can_infer_option`. An answer holding "Failed to obtain answer via API" skips this rule. The
   answer is split on whitespace into tokens; the candidates are always the letters A-E, whatever
   options the question has.
   a. If exactly one candidate letter is a whole token, that letter -- unless it is "A" and there are
      more than 3 tokens (then "A" is taken for an article and the rule goes on to b).
   b. For each (prefix, suffix) in this order: ("", "."), ("", ","), ("", ":"), ("", ")"), ("", ")."),
      ("(", ")"), ("(", ")."), (":", ""), (":", ","), (":", "."), (":", ")"), (":", ").") -- if exactly
      one candidate letter appears as the token prefix+letter+suffix, that letter. A pattern matching
      zero or several letters is skipped, not fatal.
2. `can_infer_text`: lower-case both sides; if exactly one present option's text (A-D only) is a
   substring of the answer -> that letter.
3. Otherwise None (the original returns False).

Quirks reproduced: "E" (or "C" on a two-option question) is read as that letter, and is then simply
wrong; "A dog" (2 tokens) is A, but "A dog is here" (4 tokens) skips the bare "A" and falls through
to the text rule (-> the dog option); "The answer is A" (4 tokens) is not read by rule 1a, but
"The answer is (A)." is, by pattern ("(", ")."); "A or B" and "A\\nB" give nothing from rule 1; "B.",
"(B)" and "Answer: B" match but "**B**", "[B]", "b" and "(b)" do not (lower case is never a letter);
an option text inside another ("red" in "red car") makes rule 2 ambiguous; an empty option text is
never used (the .xlsx round trip turns it into an empty cell, i.e. no option).

Missing predictions: the server reads the uploaded .xlsx with pandas and applies `str()` to every
prediction cell, so a missing or empty prediction becomes the text "nan" (None, NaN and "" are read
that way here). pandas also reads a few other exact cell texts ("NA", "N/A", "null", "NaN", and from
pandas 2.0 "None") as empty; those are not emulated.

Circular evaluation: every MMBench question comes with rotated copies whose `index` differs by
multiples of 1,000,000 (same `index % 1_000_000`). A question counts as correct only if every copy
present is answered correctly; only groups whose original (index < 1,000,000) is present are scored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from mqt_vlm.errors import MQTError

CIRCULAR_OFFSET = 1_000_000
CANDIDATE_LETTERS = ("A", "B", "C", "D", "E")
OPTION_LETTERS = ("A", "B", "C", "D")
_API_FAILURE = "Failed to obtain answer via API"
_AFFIXES = (
    ("", "."), ("", ","), ("", ":"), ("", ")"), ("", ")."), ("(", ")"), ("(", ")."),
    (":", ""), (":", ","), (":", "."), (":", ")"), (":", ")."),
)
_ARTICLE_MIN_TOKENS = 4  # "A" is an article, not an option, once the answer has more than 3 tokens


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _present_options(options: Mapping[str, object]) -> dict[str, str]:
    """Option texts by letter, without absent ones (None, NaN, ""), like `build_choices`."""
    present = {}
    for letter, text in options.items():
        if letter not in OPTION_LETTERS:
            raise MQTError(f"MMBench option keys are the letters A-D, got {letter!r}.")
        if not _is_missing(text):
            present[letter] = str(text)
    return present


def _infer_option(answer: str) -> str | None:
    if _API_FAILURE in answer:
        return None
    tokens = answer.split()
    bare = [letter for letter in CANDIDATE_LETTERS if letter in tokens]
    if len(bare) == 1 and not (bare[0] == "A" and len(tokens) >= _ARTICLE_MIN_TOKENS):
        return bare[0]
    for prefix, suffix in _AFFIXES:
        found = [letter for letter in CANDIDATE_LETTERS if prefix + letter + suffix in tokens]
        if len(found) == 1:
            return found[0]
    return None


def _infer_text(answer: str, options: Mapping[str, str]) -> str | None:
    lowered = answer.lower()
    found = [letter for letter, text in options.items() if text.lower() in lowered]
    return found[0] if len(found) == 1 else None


def mmbench_choice(prediction: str | None, options: Mapping[str, object]) -> str | None:
    """The option letter the rule-based MMBench matcher reads from `prediction`, else None.

    `options` maps "A".."D" to option texts; None / NaN / "" texts count as absent options. The answer
    may be "E" or a letter whose option is absent (see the module docstring); it is then wrong.
    """
    present = _present_options(options)
    answer = "nan" if _is_missing(prediction) else str(prediction)
    return _infer_option(answer) or _infer_text(answer, present)


def _record_options(record: Mapping[str, object]) -> dict[str, object]:
    return {letter: record[letter] for letter in OPTION_LETTERS if letter in record}


def mmbench_circular_accuracy(records: list[dict]) -> dict:
    """Circular accuracy over MMBench rows (fractions in [0, 1]), plus per-category accuracy.

    Each record is one MMBench TSV row with the model's answer added:
      "index": int — circular copies share `index % 1_000_000`; the original has index < 1_000_000;
      "prediction": str | None — the raw model answer (None / "" read as "nan", as on the server);
      "answer": str — the correct letter for this copy's option order;
      "A".."D": str — the option texts (missing / None / NaN / "" = no such option; other keys
      are ignored);
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
            choice = mmbench_choice(record["prediction"], _record_options(record))
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
