"""POPE, MME and GQA scorers against hand-derived values from the official rules.

Reference files: LLaVA llava/eval/eval_pope.py; MME eval_tool/calculation.py; LLaVA
scripts/convert_gqa_for_eval.py plus the GQA eval.py exact match.
"""

from __future__ import annotations

import math

import pytest

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.scorers import (
    COGNITION_TASKS,
    PERCEPTION_TASKS,
    gqa_correct,
    mme_parse_answer,
    mme_scores,
    pope_metrics,
    pope_says_yes,
)

# ---------------------------------------------------------------- POPE


@pytest.mark.parametrize(
    ("prediction", "yes"),
    [
        ("Yes", True),
        ("No", False),
        ("no", False),
        ("NO", True),  # only "No", "no", "not" count
        ("Not", True),
        ("Nope", True),
        ("No!", True),  # "No!" is one word, not "No"
        ("No.", False),  # first sentence "No"
        ("No, there is not.", False),
        ("Yes, there is no dog.", False),  # "no" in the first sentence wins
        ("Yes. No.", True),  # only the first sentence is read
        ("There is not a dog", False),
        ("I do not know.", False),
        ("No,there", True),  # comma deleted without a space -> "Nothere"
        ("no\nthere is", True),  # split on " " only: "no\nthere" is one word
        ("3.5 no", True),  # first "sentence" is "3"
        ("", True),  # anything unrecognised is yes
    ],
)
def test_pope_says_yes(prediction: str, yes: bool) -> None:
    assert pope_says_yes(prediction) is yes


def test_pope_metrics() -> None:
    predictions = ["Yes", "No", "Yes", "No", "yes"]
    labels = ["yes", "yes", "no", "no", "yes"]
    # TP (yes,yes), FN (no,yes), FP (yes,no), TN (no,no), TP (yes,yes)
    m = pope_metrics(predictions, labels)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 1, 1, 1)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["yes_ratio"] == pytest.approx(3 / 5)


def test_pope_label_must_be_exactly_no() -> None:
    # label "No" is not "no", so it counts as yes: prediction "no" is a false negative
    m = pope_metrics(["no"], ["No"])
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (0, 0, 0, 1)
    assert math.isnan(m["precision"])  # no predicted yes: the original divides by zero
    assert m["recall"] == 0.0
    assert math.isnan(m["f1"])
    assert (m["accuracy"], m["yes_ratio"]) == (0.0, 0.0)


def test_pope_f1_nan_when_precision_and_recall_are_zero() -> None:
    m = pope_metrics(["yes", "no"], ["no", "yes"])  # FP + FN
    assert (m["precision"], m["recall"]) == (0.0, 0.0)
    assert math.isnan(m["f1"])


def test_pope_bad_inputs() -> None:
    with pytest.raises(MQTError):
        pope_metrics(["yes"], ["yes", "no"])
    with pytest.raises(MQTError):
        pope_metrics([], [])


# ---------------------------------------------------------------- MME


@pytest.mark.parametrize(
    ("prediction", "parsed"),
    [
        ("Yes", "yes"),
        ("NO", "no"),
        ("yes, it is", "yes"),
        ("No.", "no"),
        ("Not sure", "no"),  # "not " holds "no"
        ("None", "no"),
        ("know", "no"),
        ("snow", "no"),
        ("eyes", "yes"),  # "yes" inside the first 4 characters
        ("nyes", "yes"),  # "yes" is tested before "no"
        ("noyes", "no"),  # first 4 are "noye"
        ("The answer is yes", "other"),  # first 4 are "the "
        ("  yes", "other"),  # first 4 are "  ye"
        (" yes", "yes"),
        ("I don't know", "other"),
        ("y", "other"),
        ("", "other"),
    ],
)
def test_mme_parse_answer(prediction: str, parsed: str) -> None:
    assert mme_parse_answer(prediction) == parsed


def _mme(task: str, image: str, answer: str, prediction: str) -> dict:
    return {"task": task, "image": image, "question": f"Is it {answer}?", "answer": answer,
            "prediction": prediction}


def test_mme_scores() -> None:
    rows = [
        _mme("existence", "e1.jpg", "Yes", "Yes"),  # right
        _mme("existence", "e1.jpg", "No", "No"),  # right -> e1 both right
        _mme("count", "c1.jpg", "yes", "The answer is yes"),  # other -> wrong (tasks interleaved)
        _mme("existence", "e2.jpg", "Yes", "No"),  # wrong
        _mme("existence", "e2.jpg", "No", "no"),  # right
        _mme("count", "c1.jpg", "no", "Not at all"),  # "not " -> no -> right
        _mme("commonsense_reasoning", "r1.png", "yes", "yes"),
        _mme("commonsense_reasoning", "r1.png", "no", "no"),
    ]
    result = mme_scores(rows)
    existence = result["tasks"]["existence"]
    # acc 3/4, acc_plus 1/2 (only e1 fully right) -> 75 + 50
    assert (existence["acc"], existence["acc_plus"], existence["score"]) == (0.75, 0.5, 125.0)
    count = result["tasks"]["count"]
    assert (count["acc"], count["acc_plus"], count["score"], count["other"]) == (0.5, 0.0, 50.0, 1)
    assert result["tasks"]["commonsense_reasoning"]["score"] == 200.0
    assert set(result["tasks"]) == {"existence", "count", "commonsense_reasoning"}
    assert (result["perception"], result["cognition"], result["total"]) == (175.0, 200.0, 375.0)


def test_mme_perfect_scores_are_2000_and_800() -> None:
    rows = []
    for task in (*PERCEPTION_TASKS, *COGNITION_TASKS):
        rows += [_mme(task, "i.jpg", "yes", "Yes"), _mme(task, "i.jpg", "no", "No")]
    result = mme_scores(rows)
    assert (result["perception"], result["cognition"], result["total"]) == (2000.0, 800.0, 2800.0)


def test_mme_errors() -> None:
    with pytest.raises(MQTError, match="two questions"):
        mme_scores([_mme("existence", "a.jpg", "yes", "yes")])
    with pytest.raises(MQTError, match="adjacent"):
        mme_scores([_mme("existence", "a.jpg", "yes", "yes"), _mme("existence", "b.jpg", "no", "no")])
    with pytest.raises(MQTError, match="unknown task"):
        mme_scores([_mme("vibes", "a.jpg", "yes", "yes"), _mme("vibes", "a.jpg", "no", "no")])
    with pytest.raises(MQTError, match="yes or no"):
        mme_scores([_mme("existence", "a.jpg", "maybe", "yes"), _mme("existence", "a.jpg", "no", "no")])
    with pytest.raises(MQTError, match="lacks"):
        mme_scores([{"task": "existence", "image": "a.jpg"}])
    with pytest.raises(MQTError):
        mme_scores([])


# ---------------------------------------------------------------- GQA


@pytest.mark.parametrize(
    ("prediction", "answer", "correct"),
    [
        ("yes", "yes", True),
        ("Yes.", "yes", True),  # trailing period stripped, lower-cased
        ("Yes...", "yes", True),  # every trailing period
        ("Table", "table", True),
        ("Mr. T.", "mr. t", True),  # only the trailing period goes
        ("yes. ", "yes", False),  # whitespace is never stripped, so the period stays too
        ("yes.\n", "yes", False),
        (" yes", "yes", False),
        ("the table", "table", False),  # no article removal
        ("2", "two", False),  # no number mapping
        ("yes", "Yes", False),  # the gold answer is compared as given
    ],
)
def test_gqa_correct(prediction: str, answer: str, correct: bool) -> None:
    assert gqa_correct(prediction, answer) is correct
