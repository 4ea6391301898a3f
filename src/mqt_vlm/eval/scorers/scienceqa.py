"""ScienceQA answer parsing and accuracy, reproducing LLaVA's evaluator.

Source: LLaVA llava/eval/eval_science_qa.py (commit ce1aa08d129bd7df931a7067bcb79cf3cb3a1af5, the
LLaVA-1.5 version: `get_pred_idx` plus the parsing block in `__main__`), run with its default options
["A", "B", "C", "D", "E"].

Rules, first match wins:
1. The whole prediction equals one of "A".."E" exactly (no strip, no lower-casing).
2. It is at least 3 characters long, starts with one of "A".."E" and continues with ". "
   (so "B. dog" -> B).
3. The regex `The answer is ([A-Z]).` finds exactly one match (case-sensitive; its "." is unescaped,
   so it matches any one character after the letter except a newline).
The letter must then be among the first `num_choices` options, else the parse fails (index -1 in the
original, None here).

Quirks reproduced: "A." and "A " fail (too short for rule 2, not a bare letter); "(A)", "a", " A",
"A)" and "A\\n" fail; "The answer is A" at the very end fails (nothing follows the letter) while
"The answer is A." and "The answer is AB" give A; two matches, even of the same letter, fail;
"The answer is F." fails on a 5-choice question; "E" fails on a 4-choice question; "" fails.

Missing predictions: a problem with no prediction line gets the text "FAILED" and the prompt
"Unknown" in the original. Pass None as the prediction for that case: the parse fails (the question
counts, and is wrong), and because the stand-in prompt holds no "<image>", the question is left out
of the image subset whatever `has_image` says, exactly as in LLaVA's IMG-Accuracy.

LLaVA's reported SQA number is accuracy on the questions with an image (`is_multimodal`: the prompt
holds "<image>"), which `scienceqa_accuracy` returns as `img_accuracy`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from mqt_vlm.errors import MQTError

OPTIONS = ("A", "B", "C", "D", "E")
_THE_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")


def _parse_letter(prediction: str) -> str | None:
    if prediction in OPTIONS:
        return prediction
    if len(prediction) >= 3 and prediction[0] in OPTIONS and prediction[1:3] == ". ":
        return prediction[0]
    found = _THE_ANSWER_IS.findall(prediction)
    return found[0] if len(found) == 1 else None


def scienceqa_choice(prediction: str | None, num_choices: int) -> int | None:
    """The 0-based choice index LLaVA reads from `prediction`, or None where its parse fails.

    None means "no prediction" (LLaVA's "FAILED" stand-in): the parse fails.
    """
    if isinstance(num_choices, bool) or not isinstance(num_choices, int) or num_choices < 1:
        raise MQTError(f"num_choices must be a positive int, got {num_choices!r}.")
    if prediction is None:
        return None
    if not isinstance(prediction, str):
        raise MQTError(f"prediction must be a str or None, got {type(prediction).__name__}.")
    letter = _parse_letter(prediction)
    if letter is not None and letter in OPTIONS[:num_choices]:
        return OPTIONS.index(letter)
    return None


def scienceqa_accuracy(records: Sequence[Mapping[str, object]]) -> dict:
    """Accuracy over all questions and over those with an image, as fractions in [0, 1].

    Each record: {"prediction": str | None, "answer": int (0-based), "num_choices": int,
    "has_image": bool}. A failed parse counts as wrong; a None prediction (no answer for the problem)
    counts as wrong and, as in LLaVA, outside the image subset.
    """
    if not records:
        raise MQTError("ScienceQA needs at least one record to score.")
    correct = img_correct = img_total = 0
    for i, record in enumerate(records):
        try:
            prediction, num_choices = record["prediction"], record["num_choices"]
            answer, has_image = record["answer"], bool(record["has_image"])
        except KeyError as err:
            raise MQTError(
                f"ScienceQA record {i} lacks {err}; records need prediction, answer, num_choices, "
                "has_image."
            ) from None
        choice = scienceqa_choice(prediction, num_choices)  # type: ignore[arg-type]
        hit = choice is not None and choice == answer
        correct += hit
        if has_image and prediction is not None:  # a missing prediction's prompt is "Unknown"
            img_total += 1
            img_correct += hit
    return {
        "accuracy": correct / len(records),
        "img_accuracy": img_correct / img_total if img_total else float("nan"),
        "correct": correct,
        "total": len(records),
        "img_correct": img_correct,
        "img_total": img_total,
    }
