"""Differential tests: our scorers against literal ports of the official evaluation code.

The oracles (tests/eval/oracles/, one module per official file, each naming its repository and commit)
are run on thousands of deterministically generated odd inputs -- case, punctuation, articles, number
words, contractions, unicode, empty answers, multi-sentence answers, option letters in every format,
unanimous and mixed human answers -- and every score must be *equal* (not approximately equal) to ours.
Hand cases after each block pin down the quirks by name.
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from oracles import eval_mmbench as mmbench_oracle  # noqa: E402
from oracles import eval_pope as pope_oracle  # noqa: E402
from oracles import eval_science_qa as sqa_oracle  # noqa: E402
from oracles import gqa_eval as gqa_oracle  # noqa: E402
from oracles import mme_calculation as mme_oracle  # noqa: E402
from oracles.m4c_evaluator import EvalAIAnswerProcessor, TextVQAAccuracyEvaluator  # noqa: E402
from oracles.vqa_eval import VQAEval, vqa_eval_scores  # noqa: E402
from oracles.vqa_eval_vizwiz import VQAEval_Vizwiz, vizwiz_scores  # noqa: E402

from mqt_vlm.eval.scorers import (  # noqa: E402
    COGNITION_TASKS,
    PERCEPTION_TASKS,
    gqa_correct,
    gqa_prediction,
    mmbench_choice,
    mmbench_circular_accuracy,
    mme_scores,
    normalize_vqa_answer,
    pope_metrics,
    scienceqa_accuracy,
    scienceqa_choice,
    textvqa_accuracy,
    vizwiz_accuracy,
    vqa_accuracy,
)
from mqt_vlm.eval.scorers import answer_normalization as norm  # noqa: E402

EVALAI = EvalAIAnswerProcessor()


class _NoQuestions:
    qa: dict = {}
    imgToQA: dict = {}

    def getQuesIds(self) -> list:
        return []

    def getImgs(self) -> list:
        return []


VQA_EVAL = VQAEval(_NoQuestions(), _NoQuestions())
VIZWIZ_EVAL = VQAEval_Vizwiz(_NoQuestions(), _NoQuestions())

# ---------------------------------------------------------------- generators

WORDS = (
    "apple", "Apple", "APPLE", "iphone", "iPhone", "t-shirt", "T-Shirt", "dog", "dog's", "dogs'", "cat",
    "yes", "Yes", "YES", "no", "No", "NO", "not", "none", "None", "zero", "one", "One", "two", "Two",
    "three", "four", "five", "six", "seven", "eight", "nine", "ten", "Ten", "eleven", "twelve",
    "twenty", "hundred", "0", "1", "2", "3", "7", "10", "11", "12", "100", "1,000", "1,,2", "3.5", ".5",
    "5.", "2.0", "a", "an", "the", "A", "An", "The", "THE", "dont", "don't", "don\u2019t", "cant",
    "can't", "Im", "I'm", "im", "ive", "somebody'd", "somebodyd", "y'all", "yall", "isnt", "wheres",
    "weve", "whove", "let's", "let\u2019s", "ow's'at", "couldn'tve", "hadn'tve", "twas", "oclock",
    "mr.", "st.", "u.s.a.", "e-mail", "coca-cola", "black/white", "left", "red", "red car", "stop",
    "caf\u00e9", "na\u00efve", "\u216b", "\u0663", "\uff13", "\u0130stanbul", "stra\u00dfe", "\ufb01sh",
    "\U0001f34e",
    "unanswerable", "unsuitable", "nan",
)
PUNCT = tuple(";/[]\"{}()=+\\_-><@`,?!.:'*#%&") + ("\u2019", "...", "!!", " - ", ", ", ". ", "?!")
SPACES = (" ", " ", " ", "  ", "\n", "\t", "\r", "\u00a0", "\u3000", "\u2028", "\x1c", "")


def odd_text(rng: random.Random, max_words: int = 5) -> str:
    """A random short answer built from the pieces official normalisers treat specially."""
    roll = rng.random()
    if roll < 0.04:
        return ""
    if roll < 0.06:
        return "x" + "." * rng.choice((31, 32, 33, 40))
    if roll < 0.09:
        return rng.choice(("Yes. It is.", "No, it is not.", "Yes, there is no dog.", "2. 3.", "A. B.",
                           "The answer is A.", "I think so.\nYes."))
    parts: list[str] = []
    for _ in range(rng.randint(1, max_words)):
        if parts:
            parts.append(rng.choice(SPACES) if rng.random() < 0.8 else rng.choice(PUNCT))
        word = rng.choice(WORDS)
        if rng.random() < 0.15:
            word = rng.choice(PUNCT) + word if rng.random() < 0.5 else word + rng.choice(PUNCT)
        parts.append(word)
    text = "".join(parts)
    if rng.random() < 0.2:
        text = rng.choice((str.upper, str.lower, str.title, str.capitalize))(text)
    if rng.random() < 0.2:
        text = rng.choice(SPACES) + text + rng.choice(SPACES)
    return text


def variant(rng: random.Random, text: str) -> str:
    """The same answer as a person or a model might write it differently."""
    choice = rng.randrange(9)
    if choice == 0:
        return text.upper()
    if choice == 1:
        return text.capitalize()
    if choice == 2:
        return rng.choice(("a ", "an ", "the ", "The ", "A ")) + text
    if choice == 3:
        return text + rng.choice((".", "!", "?", " ", "\n", ",", "..."))
    if choice == 4:
        swaps = {"2": "two", "two": "2", "10": "ten", "ten": "10", "0": "none", "one": "1"}
        return " ".join(swaps.get(w, w) for w in text.split(" "))
    if choice == 5:
        return text.replace(" ", "-")
    if choice == 6:
        return " " + text
    return text


def human_answers(rng: random.Random, n: int = 10) -> list[str]:
    """Ten human answers: sometimes unanimous (possibly up to whitespace), else a mix of variants."""
    base = odd_text(rng, 3)
    if rng.random() < 0.3:
        answers = [base] * n
        if rng.random() < 0.3:  # equal once stripped: still unanimous for vqaEval
            answers[rng.randrange(n)] = rng.choice((" ", "\n", "\t")) + base + rng.choice((" ", ""))
        return answers
    pool = [base] + [variant(rng, base) for _ in range(rng.randint(1, 3))] + [odd_text(rng, 2)]
    return [rng.choice(pool) for _ in range(n)]


def prediction_for(rng: random.Random, answers: list[str]) -> str:
    roll = rng.random()
    if roll < 0.45:
        return rng.choice(answers)
    if roll < 0.8:
        return variant(rng, rng.choice(answers))
    return odd_text(rng)


# ---------------------------------------------------------------- normalisers and tables


def test_tables_equal_the_official_ones() -> None:
    assert norm.CONTRACTIONS == VQA_EVAL.contractions == EVALAI.CONTRACTIONS
    assert norm.VIZWIZ_CONTRACTIONS == VIZWIZ_EVAL.contractions
    assert norm.NUMBER_WORDS == {k: v for k, v in VQA_EVAL.manualMap.items() if k != v}
    assert sorted(norm.ARTICLES) == sorted(VQA_EVAL.articles) == sorted(EVALAI.ARTICLES)
    assert list(norm.PUNCTUATION) == VQA_EVAL.punct == EVALAI.PUNCTUATIONS == VIZWIZ_EVAL.punct


def test_normalisers_match_the_official_ones() -> None:
    rng = random.Random(1)
    for _ in range(4000):
        text = odd_text(rng)
        assert normalize_vqa_answer(text) == EVALAI(text), repr(text)
        assert norm.process_punctuation(text) == VQA_EVAL.processPunctuation(text), repr(text)
        assert norm.process_digit_article(text) == VQA_EVAL.processDigitArticle(text), repr(text)
        assert (norm.process_digit_article(text, norm.VIZWIZ_CONTRACTIONS)
                == VIZWIZ_EVAL.processDigitArticle(text)), repr(text)


# ---------------------------------------------------------------- VQAv2


def _vqa_cases(seed: int, count: int) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(seed)
    answer_lists = [human_answers(rng) for _ in range(count)]
    return [prediction_for(rng, answers) for answers in answer_lists], answer_lists


def test_vqa_accuracy_equals_vqaeval_on_the_llava_submission() -> None:
    predictions, answer_lists = _vqa_cases(2, 3000)
    expected = vqa_eval_scores([EVALAI(p) for p in predictions], [list(a) for a in answer_lists])
    got = [vqa_accuracy(p, a) for p, a in zip(predictions, answer_lists)]
    mismatches = [(p, a, g, e) for p, a, g, e in zip(predictions, answer_lists, got, expected) if g != e]
    assert not mismatches, mismatches[:3]
    assert len(set(expected)) >= 5  # the generator reaches partial and full credit, not just zeros


def test_vqa_accuracy_raw_equals_vqaeval_on_the_prediction() -> None:
    predictions, answer_lists = _vqa_cases(3, 3000)
    expected = vqa_eval_scores(list(predictions), [list(a) for a in answer_lists])
    got = [vqa_accuracy(p, a, raw=True) for p, a in zip(predictions, answer_lists)]
    mismatches = [(p, a, g, e) for p, a, g, e in zip(predictions, answer_lists, got, expected) if g != e]
    assert not mismatches, mismatches[:3]
    assert len(set(expected)) >= 5


@pytest.mark.parametrize(
    ("prediction", "answers", "expected", "expected_raw"),
    [
        # unanimous human answers are compared as they are: only LLaVA's processing lower-cases "Yes"
        ("Yes", ["yes"] * 10, 1.0, 0.0),
        ("iPhone", ["iphone"] * 10, 1.0, 0.0),
        ("iphone", ["iPhone"] * 10, 0.0, 0.0),  # never lower-cased on the human side
        ("an apple", ["apple"] * 10, 1.0, 0.0),
        ("2", ["two"] * 10, 0.0, 0.0),  # unanimous "two" never becomes "2"
        ("t-shirt", ["t-shirt"] * 10, 0.0, 1.0),  # LLaVA's processing makes it "t shirt"
        ("apple", ["apple"] * 9 + [" apple\n"], 1.0, 1.0),  # equal once stripped: still unanimous
        # mixed human answers: both sides fully normalised
        ("apple", ["an apple"] * 3 + ["the apple"] * 3 + ["pear"] * 4, 1.0, 1.0),
        ("The Apple", ["apple"] * 2 + ["pear"] * 8, 0.6, 0.6),
        ("two", ["2"] * 3 + ["two"] * 7, 1.0, 1.0),  # the human "two" becomes "2" as well
        ("iPhone", ["iphone"] * 2 + ["phone"] * 8, 0.6, 0.6),
        ("A dog", ["a dog"] * 4 + ["dog"] + ["cat"] * 5, 1.0, 1.0),
        # the digit-comma rule: LLaVA deletes commas first, vqaEval deletes all punctuation around them
        ("1,000 t-shirts", ["1000 tshirts"] * 3 + ["many"] * 7, 0.0, 0.9),
        ("Yes.", ["yes"] * 10, 1.0, 0.0),
    ],
)
def test_vqa_quirks(prediction: str, answers: list[str], expected: float, expected_raw: float) -> None:
    assert vqa_accuracy(prediction, answers) == pytest.approx(expected)
    assert vqa_accuracy(prediction, answers, raw=True) == pytest.approx(expected_raw)
    assert vqa_eval_scores([EVALAI(prediction)], [list(answers)]) == [pytest.approx(expected)]
    assert vqa_eval_scores([prediction], [list(answers)]) == [pytest.approx(expected_raw)]


# ---------------------------------------------------------------- VizWiz


def test_vizwiz_accuracy_equals_the_vizwiz_tool() -> None:
    predictions, answer_lists = _vqa_cases(4, 2000)
    expected = vizwiz_scores([EVALAI(p) for p in predictions], answer_lists)
    expected_raw = vizwiz_scores(list(predictions), answer_lists)
    got = [vizwiz_accuracy(p, a) for p, a in zip(predictions, answer_lists)]
    got_raw = [vizwiz_accuracy(p, a, raw=True) for p, a in zip(predictions, answer_lists)]
    assert got == expected
    assert got_raw == expected_raw
    assert len(set(expected)) >= 5


def test_vizwiz_quirks() -> None:
    assert vizwiz_accuracy("Unanswerable", ["unanswerable"] * 10) == 1.0
    assert vizwiz_accuracy("Unanswerable", ["unanswerable"] * 10, raw=True) == 1.0
    assert vizwiz_accuracy("cat", [" cat"] * 10) == 0.0  # human answers are not even stripped
    # raw "dont" becomes the curly "don\u2019t" there; LLaVA's processing already made it a straight "don't"
    assert vizwiz_accuracy("dont", ["don't"] * 10, raw=True) == 0.0
    assert vizwiz_accuracy("dont", ["don\u2019t"] * 10, raw=True) == 1.0
    assert vizwiz_accuracy("dont", ["don't"] * 10) == 1.0
    assert vizwiz_accuracy("weve", ["we've"] * 10, raw=True) == 1.0  # one of the straight entries


# ---------------------------------------------------------------- TextVQA


def test_textvqa_accuracy_equals_the_m4c_evaluator() -> None:
    predictions, answer_lists = _vqa_cases(5, 1500)
    evaluator = TextVQAAccuracyEvaluator()
    expected = [evaluator.eval_pred_list([{"pred_answer": p, "gt_answers": a}])
                for p, a in zip(predictions, answer_lists)]
    got = [textvqa_accuracy(p, a) for p, a in zip(predictions, answer_lists)]
    assert got == expected
    assert len(set(expected)) >= 5


# ---------------------------------------------------------------- MMBench

OPTION_WORDS = ("cat", "Cat", "dog", "red", "red car", "car", "a", "A", "the", "1", "10", "yes", "no",
                "nan", "Option A", "(B)", "caf\u00e9", "\u0130")


def mmbench_prediction(rng: random.Random, options: dict[str, object]) -> object:
    letter = rng.choice("ABCDEFZ")
    formats = (
        "{}", "({})", "{}.", "{})", "{}).", "({}).", "{}:", ":{}", ":{},", ":{}.", ":{})", ":{}).", "{},",
        "**{}**", "[{}]", "Option {}", "The answer is {}", "The answer is {}.", "The answer is ({}).",
        "{} dog", "{} dog is here", "{} is the answer (A).", "I think {}", "{} or B", "{}\nC", "{}.\n{}",
    )
    roll = rng.random()
    if roll < 0.3:
        text = rng.choice(formats).replace("{}", letter if rng.random() < 0.85 else letter.lower())
    elif roll < 0.45:  # several letters, each in its own format: the pattern order decides
        text = rng.choice(SPACES[:4]).join(rng.choice(formats[:13]).replace("{}", rng.choice("ABCDE"))
                                             for _ in range(rng.randint(2, 3)))
    elif roll < 0.65:
        texts = [str(t) for t in options.values() if isinstance(t, str) and t]
        text = rng.choice(texts) if texts else "cat"
        text = variant(rng, text) if rng.random() < 0.5 else text
    elif roll < 0.72:
        return rng.choice((None, "", math.nan, "nan", "None"))
    elif roll < 0.77:
        text = rng.choice(("Failed to obtain answer via API", "Cannot determine the answer",
                           "Failed to obtain answer via API: dog",
                           "Sorry, I can't help with images of people yet."))
    else:
        text = odd_text(rng)
    if rng.random() < 0.2:
        text = odd_text(rng, 2) + rng.choice(SPACES) + text
    return text


def mmbench_options(rng: random.Random) -> dict[str, object]:
    count = rng.randint(2, 4)
    options: dict[str, object] = {}
    for letter in "ABCD"[:count]:
        options[letter] = rng.choice(OPTION_WORDS)
    for letter in "ABCD"[count:]:
        if rng.random() < 0.7:
            options[letter] = rng.choice((None, math.nan, ""))
    return options


def _server_row(options: dict[str, object], prediction: object, index: int = 0) -> dict:
    """A row as eval_mmbench.py sees it after the .xlsx round trip: empty cells are NaN."""
    row: dict = {"index": index, "prediction": prediction}
    for letter in "ABCD":
        value = options.get(letter)
        row[letter] = math.nan if value is None or value == "" else value
    if prediction is None or prediction == "":
        row["prediction"] = math.nan
    return row


def test_mmbench_choice_equals_eval_mmbench() -> None:
    rng = random.Random(6)
    for _ in range(5000):
        options = mmbench_options(rng)
        prediction = mmbench_prediction(rng, options)
        row = _server_row(options, prediction)
        row["prediction"] = str(row["prediction"])  # eval_result does this to every prediction
        expected = mmbench_oracle.prefetch_answer(row)
        got = mmbench_choice(prediction, options)  # type: ignore[arg-type]
        assert (got if got is not None else False) == expected, (prediction, options, got, expected)


def test_mmbench_circular_accuracy_equals_eval_mmbench() -> None:
    rng = random.Random(7)
    records, rows, answer_map = [], [], {}
    for main in range(400):
        for copy in range(rng.randint(1, 4)):
            index = main + copy * 1_000_000
            options = mmbench_options(rng)
            answer = rng.choice([k for k, v in options.items() if isinstance(v, str) and v])
            prediction = answer if rng.random() < 0.6 else mmbench_prediction(rng, options)
            records.append({"index": index, "prediction": prediction, "answer": answer, **options})
            rows.append(_server_row(options, prediction, index))
            answer_map[index] = answer
    for orphan in (2_000_401, 1_000_402):  # copies whose original is absent
        records.append({"index": orphan, "prediction": "A", "answer": "A", "A": "x", "B": "y"})
        rows.append(_server_row({"A": "x", "B": "y"}, "A", orphan))
        answer_map[orphan] = "A"
    rng.shuffle(records)
    expected = mmbench_oracle.circular_hits(rows, answer_map)
    result = mmbench_circular_accuracy(records)
    assert result["hits"] == expected
    assert 0 < result["correct"] < result["total"] == 400


OPTIONS = {"A": "cat", "B": "dog", "C": "red", "D": "red car"}


@pytest.mark.parametrize(
    ("prediction", "options", "expected"),
    [
        ("E", OPTIONS, "E"),  # candidates are A-E whatever the question has
        ("C", {"A": "cat", "B": "dog"}, "C"),
        ("A dog", OPTIONS, "A"),  # 2 tokens: the "A" counts
        ("A dog is here", OPTIONS, "B"),  # 4 tokens: "A" taken for an article, text rule finds "dog"
        ("A cat is here", OPTIONS, "A"),  # ... and here the text rule lands on A again
        ("The answer is A", OPTIONS, None),  # 4 tokens, no pattern, no option text inside
        ("The answer is (A).", OPTIONS, "A"),  # pattern ("(", ").")
        ("A is the answer (A).", OPTIONS, "A"),
        ("Answer: C", OPTIONS, "C"),  # 2 tokens: bare "C"
        ("B: dog", OPTIONS, "B"),  # pattern ("", ":")
        (":D)", OPTIONS, "D"),  # pattern (":", ")")
        ("(A) or (B)", OPTIONS, None),  # two letters in the same pattern: skipped; no text either
        ("A. or (B)", OPTIONS, "A"),  # ("", ".") has one letter, tried before ("(", ")")
        ("**B**", OPTIONS, None),
        ("[C]", OPTIONS, None),  # no pattern has brackets, and "[c]" holds no option text
        ("a", OPTIONS, None),
        ("A or B", OPTIONS, None),
        ("A\nB", OPTIONS, None),
        ("Z", OPTIONS, None),  # no "none of these" letter in this version
        ("Cannot determine the answer", OPTIONS, None),  # no refusal rule in this version
        ("red car", OPTIONS, None),  # "red" and "red car" both inside: ambiguous
        ("Failed to obtain answer via API: dog", OPTIONS, "B"),  # letter rule skipped, text rule runs
        (None, {"A": "nan", "B": "dog"}, "A"),  # a missing prediction reads "nan"
        ("", {"A": "an", "B": "dog"}, "A"),  # so does an empty one ("an" is inside "nan")
    ],
)
def test_mmbench_quirks(prediction: str | None, options: dict, expected: str | None) -> None:
    assert mmbench_choice(prediction, options) == expected
    row = _server_row(options, prediction)
    row["prediction"] = str(row["prediction"])
    assert mmbench_oracle.prefetch_answer(row) == (expected or False)


# ---------------------------------------------------------------- ScienceQA


def sqa_prediction(rng: random.Random) -> str | None:
    letter = rng.choice("ABCDEFZa")
    roll = rng.random()
    if roll < 0.08:
        return None
    if roll < 0.4:
        return rng.choice(("{}", "{}.", "{} ", " {}", "({})", "{})", "{}\n", "{}. ", "{}. dog", "{}.dog",
                           "{}{}", "")).replace("{}", letter)
    if roll < 0.75:
        text = rng.choice(("The answer is {}.", "The answer is {}", "The answer is {} ", "The answer is {}\n",
                           "the answer is {}.", "The answer is ({}).", "The answer is {}{}",
                           "Because. The answer is {}.", "The answer is {}. The answer is {}.",
                           "The answer is {}. The answer is B.")).replace("{}", letter)
        return text if rng.random() < 0.8 else odd_text(rng, 2) + " " + text
    return odd_text(rng)


def test_scienceqa_equals_eval_science_qa() -> None:
    rng = random.Random(8)
    problems, predictions, records = {}, {}, []
    for i in range(3000):
        pid = str(i)
        num_choices = rng.randint(2, 6)
        answer = rng.randrange(min(num_choices, 5))
        prediction, has_image = sqa_prediction(rng), rng.random() < 0.7
        problems[pid] = {"choices": [f"c{j}" for j in range(num_choices)], "answer": answer}
        if prediction is not None:
            predictions[pid] = {"text": prediction, "prompt": ("<image>\n" if has_image else "") + "Question?"}
        records.append({"prediction": prediction, "answer": answer, "num_choices": num_choices,
                        "has_image": has_image})
        choice = scienceqa_choice(prediction, num_choices)
        expected_index = sqa_oracle.evaluate({pid: problems[pid]}, {pid: predictions[pid]} if pid in predictions
                                             else {})["results"][pid]
        assert (choice if choice is not None else -1) == expected_index, (prediction, num_choices)
    expected = sqa_oracle.evaluate(problems, predictions)
    got = scienceqa_accuracy(records)
    assert (got["correct"], got["total"], got["img_correct"], got["img_total"]) == (
        expected["correct"], expected["total"], expected["img_correct"], expected["img_total"])
    assert 0 < got["correct"] < got["total"]


def test_scienceqa_missing_and_empty_predictions() -> None:
    assert scienceqa_choice(None, 4) is None  # no TypeError: LLaVA's "FAILED" stand-in
    assert scienceqa_choice("", 4) is None
    records = [
        {"prediction": None, "answer": 0, "num_choices": 4, "has_image": True},  # missing
        {"prediction": "", "answer": 0, "num_choices": 4, "has_image": True},  # empty: wrong, in IMG
        {"prediction": "A", "answer": 0, "num_choices": 4, "has_image": True},
    ]
    got = scienceqa_accuracy(records)
    assert (got["correct"], got["total"], got["img_correct"], got["img_total"]) == (1, 3, 1, 2)
    expected = sqa_oracle.evaluate(
        {"0": {"choices": list("wxyz"), "answer": 0}, "1": {"choices": list("wxyz"), "answer": 0},
         "2": {"choices": list("wxyz"), "answer": 0}},
        {"1": {"text": "", "prompt": "<image>\nQ"}, "2": {"text": "A", "prompt": "<image>\nQ"}},
    )
    assert (expected["correct"], expected["total"], expected["img_correct"], expected["img_total"]) == (1, 3, 1, 2)


# ---------------------------------------------------------------- POPE, GQA, MME

POPE_PIECES = ("Yes", "yes", "No", "no", "NO", "not", "Not", "Nope", "No,", "No.", "no\nthere", "there",
               "is", "a", "dog", "3.5", ",", ".", "No!", "nothing", "cannot", "I", "don't", "think")


def test_pope_metrics_equal_eval_pope() -> None:
    rng = random.Random(9)
    for _ in range(40):
        size = rng.randint(20, 150)
        predictions = [rng.choice((" ", ", ", ". ", "\n", "")).join(rng.choice(POPE_PIECES)
                                                                     for _ in range(rng.randint(0, 5)))
                       for _ in range(size)]
        labels = [rng.choice(("yes", "no", "no", "No", "")) for _ in range(size)]
        got = pope_metrics(predictions, labels)
        try:
            expected = pope_oracle.eval_pope([{"text": p} for p in predictions], list(labels))
        except ZeroDivisionError:
            assert any(math.isnan(got[k]) for k in ("precision", "recall", "f1"))
            continue
        assert {k: got[k] for k in expected} == expected


def test_gqa_equals_convert_and_eval() -> None:
    rng = random.Random(10)
    questions, converted, ours = {}, [], []
    for i in range(3000):
        gold = rng.choice(("yes", "no", "table", "left", "2", "mr. t", "t-shirt", "the table", ""))
        text = rng.choice((variant(rng, gold), gold, odd_text(rng))) + rng.choice(("", ".", "..", ". ", ".\n"))
        questions[str(i)] = {"answer": gold, "isBalanced": True}
        converted.append(gqa_oracle.convert_line({"question_id": str(i), "text": text}))
        ours.append(float(gqa_correct(text, gold)))
        assert gqa_prediction(text) == converted[-1]["prediction"]
    assert ours == gqa_oracle.accuracy(questions, converted)
    assert 0 < sum(ours) < len(ours)


MME_PREDICTIONS = ("Yes", "No", "yes", "no", "YES", "yes, it is", "No.", "Not sure", "None", "know", "snow",
                   "eyes", "nyes", "noyes", "The answer is yes", "  yes", " yes", "I don't know", "y", "",
                   "\u0130yes", "Yes\u00a0", "nO")


def test_mme_scores_equal_the_calculation_tool() -> None:
    rng = random.Random(11)
    for _ in range(30):
        rows, files = [], {}
        for task in (*PERCEPTION_TASKS, *COGNITION_TASKS):
            tups = []
            for image in range(rng.randint(1, 5)):
                for label in rng.sample(("Yes", "No"), 2) if rng.random() < 0.8 else ("yes", "no"):
                    prediction = rng.choice(MME_PREDICTIONS)
                    if rng.random() < 0.2:
                        # a tab or line break would break the tool's file format (it crashes)
                        prediction = odd_text(rng).replace("\n", " ").replace("\t", " ").replace("\r", " ")
                    question = "Is it? Please answer yes or no."
                    rows.append({"task": task, "image": f"{image}.jpg", "question": question, "answer": label,
                                 "prediction": prediction})
                    tups.append((f"{image}.jpg", question, label, prediction))
            files[task] = mme_oracle.write_task_file(tups)
        expected = mme_oracle.calculate_metrics().process_result(files)
        got = mme_scores(rows)
        assert got["perception"] == expected["Perception"][0]
        assert got["cognition"] == expected["Cognition"][0]
        for _, per_task in expected.values():
            for task, score in per_task.items():
                assert got["tasks"][task]["score"] == score, task
