"""ScienceQA and MMBench option parsing against hand-derived values from the official rules.

Reference files: LLaVA llava/eval/eval_science_qa.py; OpenCompass tools/eval_mmbench.py (2023:
can_infer*, circular evaluation without the GPT fallback). tests/eval/test_scorers_differential.py runs
the same scorers against literal ports of those files.
"""

from __future__ import annotations

import math

import pytest

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.scorers import (
    mmbench_choice,
    mmbench_circular_accuracy,
    scienceqa_accuracy,
    scienceqa_choice,
)

# ---------------------------------------------------------------- ScienceQA


@pytest.mark.parametrize(
    ("prediction", "num_choices", "expected"),
    [
        ("A", 4, 0),
        ("D", 4, 3),
        ("E", 4, None),  # a valid letter beyond the question's choices
        ("E", 5, 4),
        ("A.", 4, None),  # 2 chars: not a bare letter, too short for "X. "
        ("A ", 4, None),
        (" A", 4, None),
        ("(A)", 4, None),
        ("a", 4, None),  # case-sensitive
        ("A)", 4, None),
        ("A\n", 4, None),
        ("AB", 4, None),
        ("", 4, None),
        ("B. dog", 4, 1),  # rule 2
        ("B. ", 4, 1),
        ("B.dog", 4, None),  # no space after the period
        ("The answer is C.", 4, 2),  # rule 3
        ("The answer is C", 4, None),  # the regex's "." needs one more character
        ("The answer is C ", 4, 2),
        ("The answer is CD", 4, 2),  # "D" is eaten by the unescaped "."
        ("The answer is A\n", 4, None),  # "." does not match a newline
        ("Because it floats. The answer is B.", 4, 1),
        ("The answer is A. The answer is B.", 4, None),  # two matches
        ("The answer is A. The answer is A.", 4, None),  # two matches, even if equal
        ("the answer is A.", 4, None),  # case-sensitive
        ("The answer is (A).", 4, None),
        ("The answer is F.", 5, None),  # F is not among A-E
        ("A. The answer is B.", 4, 0),  # rule 2 wins over rule 3
        (None, 4, None),  # no prediction: LLaVA's "FAILED" stand-in, a failed parse (not a TypeError)
    ],
)
def test_scienceqa_choice(prediction: str | None, num_choices: int, expected: int | None) -> None:
    assert scienceqa_choice(prediction, num_choices) == expected


@pytest.mark.parametrize("bad", [0, -1, True, 2.0])
def test_scienceqa_choice_rejects_bad_num_choices(bad: object) -> None:
    with pytest.raises(MQTError):
        scienceqa_choice("A", bad)  # type: ignore[arg-type]


def test_scienceqa_accuracy() -> None:
    records = [
        {"prediction": "A", "answer": 0, "num_choices": 4, "has_image": True},  # right
        {"prediction": "B", "answer": 0, "num_choices": 4, "has_image": True},  # wrong
        {"prediction": "The answer is C.", "answer": 2, "num_choices": 3, "has_image": True},  # right
        {"prediction": "(A)", "answer": 0, "num_choices": 2, "has_image": False},  # parse fails: wrong
    ]
    result = scienceqa_accuracy(records)
    assert result["accuracy"] == 0.5  # 2 / 4
    assert result["img_accuracy"] == pytest.approx(2 / 3)  # 2 of the 3 with an image
    assert (result["correct"], result["total"], result["img_total"]) == (2, 4, 3)


def test_scienceqa_accuracy_errors() -> None:
    with pytest.raises(MQTError):
        scienceqa_accuracy([])
    with pytest.raises(MQTError, match="has_image"):
        scienceqa_accuracy([{"prediction": "A", "answer": 0, "num_choices": 4}])


# ---------------------------------------------------------------- MMBench single answers

OPTIONS = {"A": "cat", "B": "dog", "C": "red", "D": "red car"}


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("A", "A"),
        ("(B)", "B"),
        ("C.", "C"),
        ("D)", "D"),
        ("B: dog", "B"),
        ("**B**", None),  # no prefix/suffix pattern has "*"; "**b**" holds no option text
        ("[C]", None),  # nor "[" / "]"
        ("Answer: C", "C"),
        ("The answer is B", "B"),
        ("I think the answer is C", "C"),  # "I" is not an option letter
        ("A dog", "A"),  # the article is read as option A (right answer would be B)
        ("a", None),  # lower-case letters are never option tokens; "a" holds no option text
        ("b", None),
        ("(a)", None),
        ("dog", "B"),  # option text
        ("The Dog.", "B"),  # text match is case-insensitive
        ("Red", "C"),  # "red" is in "red", "red car" is not
        ("red car", None),  # both "red" and "red car" are substrings: ambiguous
        ("A or B", None),  # two letters; no option text inside "a or b"
        ("A\nB", None),
        ("E", "E"),  # the letter candidates are always A-E: read as E, which is then wrong
        ("A dog is here", "B"),  # > 3 tokens: the lone "A" is taken for an article; text rule -> dog
        ("The answer is (C).", "C"),  # prefix/suffix pattern ("(", ").")
        ("Z", None),  # no "none of these" letter in the 2023 rules
        ("Cannot determine the answer", None),  # no refusal rule in the 2023 rules
        ("I'm sorry, but without the image provided, I can't tell.", None),
        ("Failed to obtain answer via API: dog", "B"),  # letter rule skipped, text rule still runs
        ("", None),  # read as "nan" (the .xlsx round trip), which holds no option text here
    ],
)
def test_mmbench_choice(prediction: str, expected: str | None) -> None:
    assert mmbench_choice(prediction, dict(OPTIONS)) == expected


def test_mmbench_choice_absent_options() -> None:
    options = {"A": "cat", "B": "dog", "C": None, "D": ""}
    # letters of absent options are still read (the candidates are always A-E) ...
    assert mmbench_choice("C", options) == "C"  # type: ignore[arg-type]
    assert mmbench_choice("D", options) == "D"  # type: ignore[arg-type]
    assert mmbench_choice("B", {"A": "cat", "B": math.nan}) == "B"  # type: ignore[dict-item]
    # ... but an absent option's text never matches (an empty text would be inside everything)
    assert mmbench_choice("a dog", options) == "B"  # type: ignore[arg-type]


def test_mmbench_choice_does_not_mutate_and_checks_keys() -> None:
    options = {"A": "Cat", "B": "Dog"}
    assert mmbench_choice("a CAT", options) == "A"
    assert options == {"A": "Cat", "B": "Dog"}  # the original lower-cased the caller's dict
    with pytest.raises(MQTError):
        mmbench_choice("A", {"AA": "cat"})
    with pytest.raises(MQTError):
        mmbench_choice("A", {"E": "cat"})  # MMBench options are A-D


# ---------------------------------------------------------------- MMBench circular evaluation


def _row(index: int, prediction: str, answer: str, a: str, b: str, category: str) -> dict:
    return {"index": index, "prediction": prediction, "answer": answer, "A": a, "B": b,
            "category": category, "l2-category": "Perception"}


def test_mmbench_circular_accuracy() -> None:
    records = [
        _row(1_000_001, "B", "B", "dog", "cat", "cp"),  # variant listed first: order must not matter
        _row(1, "A", "A", "cat", "dog", "cp"),  # Q1: both copies right -> hit
        _row(2, "A", "A", "cat", "dog", "lr"),
        _row(1_000_002, "A", "B", "dog", "cat", "lr"),  # Q2: the rotated copy is wrong -> miss
        _row(3, "cat", "A", "cat", "dog", "cp"),  # Q3: text match, no copies -> hit
        _row(4, "b", "B", "cat", "dog", "lr"),  # Q4: unparseable -> miss (no GPT judge)
        _row(2_000_005, "A", "A", "cat", "dog", "lr"),  # orphan copy: its original is absent -> ignored
    ]
    result = mmbench_circular_accuracy(records)
    assert result["hits"] == {1: 1, 2: 0, 3: 1, 4: 0}
    assert (result["correct"], result["total"], result["accuracy"]) == (2, 4, 0.5)
    assert result["category"] == {"cp": 1.0, "lr": 0.0}
    assert result["l2-category"] == {"Perception": 0.5}


def test_mmbench_circular_copy_with_option_text() -> None:
    # the copy answers with option text; "cat" is option B in the rotated order -> still a hit
    records = [_row(7, "A", "A", "cat", "dog", "x"), _row(1_000_007, "cat", "B", "dog", "cat", "x")]
    assert mmbench_circular_accuracy(records)["accuracy"] == 1.0


def test_mmbench_circular_errors() -> None:
    with pytest.raises(MQTError, match="twice"):
        mmbench_circular_accuracy([_row(1, "A", "A", "c", "d", "x"), _row(1, "A", "A", "c", "d", "x")])
    with pytest.raises(MQTError, match="original"):
        mmbench_circular_accuracy([_row(1_000_001, "A", "A", "c", "d", "x")])
    with pytest.raises(MQTError, match="prediction"):
        mmbench_circular_accuracy([{"index": 1, "answer": "A", "A": "c"}])
