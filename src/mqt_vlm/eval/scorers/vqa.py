"""VQAv2 and VizWiz accuracy, reproducing the official VQA evaluation.

Source: GT-Vision-Lab/VQA PythonEvaluationTools/vqaEvaluation/vqaEval.py (`VQAEval.evaluate`, Python 3
version; the VQAv2 test server runs it) and the VizWiz-VQA evaluation (a vqaEval.py fork by Qing Li).
The normalisation itself and its quirks live in `answer_normalization`.

Per question, the prediction is normalised (newlines/tabs to spaces, strip, `processPunctuation`,
`processDigitArticle`) and scored against the N human answers as the mean over the N leave-one-out
subsets of min(1, #matches among the other N-1 answers / 3). With 10 answers of which k match:
k=0 -> 0, k=1 -> 0.3, k=2 -> 0.6, k=3 -> 0.9, k>=4 -> 1.0.

Quirks reproduced:

* VQAv2 normalises the human answers only when they disagree (`len(set(answers)) > 1`), and then only
  with `processPunctuation`: never lower-cased, never digit/article-mapped. Unanimous answers stay raw,
  so a unanimous "t-shirt" can never be matched (the prediction becomes "t shirt"), and a human answer
  "two" never matches (the prediction "two" becomes "2"). The released annotations are pre-cleaned, so
  this rarely bites on real data, but it is the rule.
* VizWiz never touches the human answers at all (only the prediction is normalised).
* Leave-one-out drops exactly one answer per subset (answers carry unique ids), even when several
  answers are equal strings.
"""

from __future__ import annotations

from collections.abc import Sequence

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.scorers.answer_normalization import (
    normalize_vqa_eval_prediction,
    process_punctuation,
)


def leave_one_out_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Mean over the leave-one-out subsets of min(1, matches/3), compared as exact strings.

    Sums in answer order with the same per-term values as vqaEval, so results are bit-identical.
    """
    if len(answers) == 0:
        raise MQTError("A VQA question needs at least one human answer to score against.")
    matches = sum(answer == prediction for answer in answers)
    total = 0.0
    for answer in answers:
        others = matches - (answer == prediction)
        total += min(1.0, others / 3)
    return total / len(answers)


def _check_inputs(prediction: object, answers: object) -> None:
    if not isinstance(prediction, str):
        raise MQTError(f"prediction must be a str, got {type(prediction).__name__}.")
    if not isinstance(answers, (list, tuple)) or not all(isinstance(a, str) for a in answers):
        raise MQTError("answers must be a list of str (the human answers of one question).")


def vqa_accuracy(prediction: str, answers: list[str]) -> float:
    """VQAv2 accuracy of one prediction against its (usually 10) human answers, in [0, 1]."""
    _check_inputs(prediction, answers)
    normalized = normalize_vqa_eval_prediction(prediction)
    if len(set(answers)) > 1:
        references = [process_punctuation(answer) for answer in answers]
    else:
        references = list(answers)
    return leave_one_out_accuracy(normalized, references)


def vizwiz_accuracy(prediction: str, answers: list[str]) -> float:
    """VizWiz-VQA accuracy: like `vqa_accuracy` but the human answers are compared raw."""
    _check_inputs(prediction, answers)
    return leave_one_out_accuracy(normalize_vqa_eval_prediction(prediction), list(answers))
