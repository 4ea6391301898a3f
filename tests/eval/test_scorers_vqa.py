"""VQAv2 / VizWiz / TextVQA scorers against hand-derived values from the official rules.

Reference files: GT-Vision-Lab/VQA vqaEval.py (VQAv2, 2021 version), the VizWiz vqaEval fork, LLaVA's
llava/eval/m4c_evaluator.py (EvalAIAnswerProcessor + TextVQAAccuracyEvaluator) and
scripts/convert_vqav2_for_submission.py. tests/eval/test_scorers_differential.py runs the same scorers
against literal ports of those files.
"""

from __future__ import annotations

import pytest

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.scorers import normalize_vqa_answer, textvqa_accuracy, vizwiz_accuracy, vqa_accuracy
from mqt_vlm.eval.scorers.answer_normalization import process_digit_article, process_punctuation

# ---------------------------------------------------------------- processPunctuation (vqaEval)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("t-shirt", "t shirt"),  # "-" touches no space -> becomes a space
        ("t-shirt - red", "tshirt  red"),  # " -" exists somewhere -> every "-" is deleted
        ("1,000", "1000"),  # digit,digit -> all punctuation deleted
        ("1,000 t-shirt", "1000 tshirt"),  # ... including the unrelated "-"
        ("hello, world", "hello world"),  # ", " touches a space -> deleted
        ("a,b", "a b"),  # no digits, no space -> spaced
        ("yes!", "yes "),  # "!" -> space; the space survives until processDigitArticle
        ("end.", "end"),  # period not followed by a digit
        ("3.5", "3.5"),  # period followed by a digit survives
        (".5", ".5"),
        ("mr. t", "mr t"),
        ("don't", "don't"),  # the apostrophe is not in the punctuation list
        ("a:b", "a:b"),  # neither is ":"
        ("(yes)", " yes "),
        ("", ""),
    ],
)
def test_process_punctuation(text: str, expected: str) -> None:
    assert process_punctuation(text) == expected


def test_process_punctuation_removes_at_most_32_periods() -> None:
    # re.UNICODE (== 32) is passed as Pattern.sub's count: 40 periods -> 8 left
    assert process_punctuation("x" + "." * 40) == "x" + "." * 8
    assert process_punctuation("x" + "." * 32) == "x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Two dogs", "2 dogs"),
        ("none", "0"),
        ("ten", "10"),
        ("eleven", "eleven"),  # only zero..ten are mapped
        ("an apple", "apple"),
        ("a", ""),
        ("dont", "don't"),
        ("Im", "im"),  # the key "Im" has a capital and can never match after lower()
        ("somebody'd", "somebodyd"),  # backwards mapping kept
        ("  multiple   spaces ", "multiple spaces"),
    ],
)
def test_process_digit_article(text: str, expected: str) -> None:
    assert process_digit_article(text) == expected


# ---------------------------------------------------------------- EvalAIAnswerProcessor


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # the original's own __main__ example: "." stripped, "the"/"a" dropped, "%" kept
        ("The poster shows a 10% discount.", "poster shows 10% discount"),
        ("Dog's bowl", "dog 's bowl"),  # "'s" split off
        ("1,000", "1000"),  # commas deleted up front
        ("1,000 t-shirt", "1000 t shirt"),  # so the digit-comma rule never fires: "-" is spaced
        ("Why?", "why"),
        ("Two", "2"),
        ("Yes!", "yes"),
        ("  The  End.\n", "end"),
        ("3.5", "3.5"),
        ("", ""),
    ],
)
def test_normalize_vqa_answer(answer: str, expected: str) -> None:
    assert normalize_vqa_answer(answer) == expected


# ---------------------------------------------------------------- vqa_accuracy (VQAv2)


@pytest.mark.parametrize(
    ("matches", "expected"),
    # k of 10 answers match: mean_i min(1, others_i/3) = [k*min(1,(k-1)/3) + (10-k)*min(1,k/3)] / 10
    [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (5, 1.0), (10, 1.0)],
)
def test_vqa_leave_one_out_with_10_answers(matches: int, expected: float) -> None:
    answers = ["cat"] * matches + ["dog"] * (10 - matches)
    assert vqa_accuracy("cat", answers) == pytest.approx(expected)


def test_vqa_three_answers() -> None:
    # subsets: drop cat -> 1 match (1/3), drop cat -> 1/3, drop dog -> 2 matches (2/3); mean 4/9
    assert vqa_accuracy("cat", ["cat", "cat", "dog"]) == pytest.approx(4 / 9)


def test_vqa_prediction_is_normalised() -> None:
    assert vqa_accuracy("Two", ["2"] * 10) == 1.0  # number word -> digit
    assert vqa_accuracy("A dog", ["dog"] * 3 + ["cat"] * 7) == pytest.approx(0.9)  # article dropped
    assert vqa_accuracy("YES", ["yes"] * 10) == 1.0  # lower-cased
    assert vqa_accuracy("yes\n", ["yes"] * 10) == 1.0  # stripped
    assert vqa_accuracy("1,000", ["1000"] * 10) == 1.0
    assert vqa_accuracy("3.5", ["3.5"] * 10) == 1.0
    assert vqa_accuracy("dont", ["don't"] * 10) == 1.0


def test_vqa_unanimous_answers_stay_raw() -> None:
    # all 10 agree -> neither the human answers nor the submitted answer are normalised by vqaEval;
    # by default the submitted answer is LLaVA's post-processed one
    assert vqa_accuracy("2", ["two"] * 10) == 0.0
    assert vqa_accuracy("t-shirt", ["t-shirt"] * 10) == 0.0  # LLaVA submits "t shirt"
    assert vqa_accuracy("t-shirt", ["t-shirt"] * 10, raw=True) == 1.0
    assert vqa_accuracy("Yes", ["Yes"] * 10) == 0.0  # LLaVA submits "yes"; the answers stay "Yes"
    assert vqa_accuracy("Yes", ["Yes"] * 10, raw=True) == 1.0
    assert vqa_accuracy("Yes", ["yes"] * 10) == 1.0
    assert vqa_accuracy("Yes", ["yes"] * 10, raw=True) == 0.0
    assert vqa_accuracy("dont", ["dont"] * 10) == 0.0  # LLaVA submits "don't"


def test_vqa_disagreeing_answers_are_fully_normalised() -> None:
    # vqaEval (2021): with disagreeing human answers, both sides get punctuation + digits/articles
    # 9 x "t-shirt" -> "t shirt" (they disagree with "shirt"), 9 matches -> 1.0
    assert vqa_accuracy("t-shirt", ["t-shirt"] * 9 + ["shirt"]) == 1.0
    # human "two" becomes "2" too: all 10 match
    assert vqa_accuracy("two", ["2"] * 3 + ["two"] * 7) == 1.0
    # human "a dog" loses its article: 5 matches
    assert vqa_accuracy("A dog", ["a dog"] * 4 + ["dog"] + ["cat"] * 5) == 1.0
    assert vqa_accuracy("an apple", ["apple", "the apple", "Apple"] + ["pear"] * 7) == pytest.approx(0.9)
    # "1,000" -> "1000" among human answers: 2 + 2 matches
    assert vqa_accuracy("1000", ["1,000"] * 2 + ["1000"] * 2 + ["many"] * 6) == 1.0


def test_vqa_multi_sentence_and_empty() -> None:
    # "Yes. It is." -> periods dropped -> "yes it is" != "yes"
    assert vqa_accuracy("Yes. It is.", ["yes"] * 10) == 0.0
    assert vqa_accuracy("", ["yes"] * 10) == 0.0
    # an empty prediction does match empty human answers (3 of 10 -> 0.9)
    assert vqa_accuracy("", [""] * 3 + ["yes"] * 7) == pytest.approx(0.9)


def test_vqa_bad_inputs() -> None:
    with pytest.raises(MQTError):
        vqa_accuracy("yes", [])
    with pytest.raises(MQTError):
        vqa_accuracy(None, ["yes"])  # type: ignore[arg-type]
    with pytest.raises(MQTError):
        vqa_accuracy("yes", "yes")  # type: ignore[arg-type]


# ---------------------------------------------------------------- vizwiz_accuracy


def test_vizwiz_never_normalises_human_answers() -> None:
    # VQAv2 would punctuate the disagreeing answers and give 1.0; VizWiz compares raw: 0 matches
    assert vizwiz_accuracy("t-shirt", ["t-shirt"] * 9 + ["shirt"]) == 0.0
    assert vizwiz_accuracy("t-shirt", ["t-shirt"] * 9 + ["shirt"], raw=True) == 0.0
    assert vizwiz_accuracy("Unanswerable", ["unanswerable"] * 10) == 1.0
    assert vizwiz_accuracy("cat", ["cat"] * 2 + ["dog"] * 8) == pytest.approx(0.6)


# ---------------------------------------------------------------- textvqa_accuracy


@pytest.mark.parametrize(("matches", "expected"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0)])
def test_textvqa_leave_one_out(matches: int, expected: float) -> None:
    answers = ["stop"] * matches + ["go"] * (10 - matches)
    assert textvqa_accuracy("stop", answers) == pytest.approx(expected)


def test_textvqa_normalises_both_sides() -> None:
    assert textvqa_accuracy("Two", ["2"] * 3 + ["x"] * 7) == pytest.approx(0.9)
    assert textvqa_accuracy("2", ["Two"] * 3 + ["x"] * 7) == pytest.approx(0.9)  # VQAv2 would give 0
    assert textvqa_accuracy("t-shirt", ["t-shirt"] * 10) == 1.0  # VQAv2 would give 0
    # "the Coca-Cola" -> "coca cola"; human "Coca Cola" -> "coca cola" (2 of 10)
    assert textvqa_accuracy("the Coca-Cola", ["Coca Cola"] * 2 + ["pepsi"] * 8) == pytest.approx(0.6)
    # "joe's" -> "joe 's"; human "joe 's" -> "joe  's" -> "joe 's"; human "joes" stays "joes"
    assert textvqa_accuracy("joe's", ["joe 's"] * 10) == 1.0
    assert textvqa_accuracy("joe's", ["joes"] * 10) == 0.0
    assert textvqa_accuracy("Why?", ["why"] * 10) == 1.0


def test_textvqa_needs_exactly_ten_answers() -> None:
    with pytest.raises(MQTError, match="10"):
        textvqa_accuracy("stop", ["stop"] * 9)
