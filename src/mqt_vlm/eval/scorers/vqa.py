"""VQAv2 and VizWiz accuracy, reproducing what LLaVA-1.5's published numbers went through.

Sources:
* GT-Vision-Lab/VQA PythonEvaluationTools/vqaEvaluation/vqaEval.py, `VQAEval.evaluate` at commit
  a013f0043c1e2cdc995922dfe257f7149aa9af06 ("Fixed processing answers bug", 2021; the VQAv2 server).
* The VizWiz-VQA tool: Qing Li's vqaEval.py fork (`VQAEval_Vizwiz.evaluate`), linked from vizwiz.org.
* LLaVA scripts/convert_vqav2_for_submission.py and convert_vizwiz_for_submission.py (commit
  ce1aa08d129bd7df931a7067bcb79cf3cb3a1af5), which run `EvalAIAnswerProcessor`
  (`normalize_vqa_answer`) on every raw model answer before upload.

What the functions compute. A published LLaVA-1.5 VQAv2 / VizWiz number is the server's tool applied
to the answer LLaVA *submitted*, i.e. to `normalize_vqa_answer(raw model output)`; that is what
`vqa_accuracy` and `vizwiz_accuracy` return by default. `raw=True` applies the tool to the prediction
as given (what a submission without LLaVA's post-processing would score). The two differ: "Yes" against
ten "yes" scores 0 raw (unanimous human answers are compared untouched) and 1 by default.

vqaEval, per question (answers: usually 10 strings):
1. Newlines/tabs become spaces and both the submitted answer and every human answer are stripped.
2. Only if the stripped human answers are not all identical (`len(set(answers)) > 1`): every human
   answer *and* the submitted answer go through `processPunctuation` then `processDigitArticle`.
   Unanimous questions compare the stripped strings as they are: case, articles, number words and
   punctuation all count ("iPhone" != "iphone", "2" != "two", "t-shirt" != "t shirt").
3. Score = mean over the N leave-one-out subsets of min(1, #matches among the other N-1 / 3). With
   10 answers of which k match: k=0 -> 0, 1 -> 0.3, 2 -> 0.6, 3 -> 0.9, k>=4 -> 1.0. Exactly one answer
   is left out per subset even when several are equal strings (answers carry unique ids).

VizWiz: the submitted answer is always cleaned and normalised (with VizWiz's curly-apostrophe
contraction table); the human answers are never touched, not even stripped. Same leave-one-out score.

Quirks this makes visible (all reproduced): with mixed human answers "apple", "an apple" and "the apple"
all become "apple", and "two" becomes "2" on both sides; with unanimous answers none of that happens.
The version of vqaEval.py before 2021 normalised only the submitted answer and only punctuated the
human answers; that is *not* what this reproduces.
"""

from __future__ import annotations

from collections.abc import Sequence

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.scorers.answer_normalization import (
    VIZWIZ_CONTRACTIONS,
    clean_whitespace,
    normalize_vqa_answer,
    normalize_vqa_eval_answer,
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


def vqa_eval_accuracy(submitted: str, answers: list[str]) -> float:
    """vqaEval's accuracy of one submitted answer string (steps 1-3 of the module docstring)."""
    _check_inputs(submitted, answers)
    submitted = clean_whitespace(submitted)
    references = [clean_whitespace(answer) for answer in answers]
    if len(set(references)) > 1:
        references = [normalize_vqa_eval_answer(answer) for answer in references]
        submitted = normalize_vqa_eval_answer(submitted)
    return leave_one_out_accuracy(submitted, references)


def vqa_accuracy(prediction: str, answers: list[str], *, raw: bool = False) -> float:
    """VQAv2 accuracy of one prediction against its (usually 10) human answers, in [0, 1].

    Default: the score of the answer LLaVA would submit (`normalize_vqa_answer(prediction)`), which is
    what LLaVA-1.5's published VQAv2 number means. `raw=True`: vqaEval on `prediction` as given.
    """
    _check_inputs(prediction, answers)
    return vqa_eval_accuracy(prediction if raw else normalize_vqa_answer(prediction), answers)


def vizwiz_accuracy(prediction: str, answers: list[str], *, raw: bool = False) -> float:
    """VizWiz-VQA accuracy: the submitted answer normalised, the human answers compared raw.

    Default: of the answer LLaVA would submit (`normalize_vqa_answer(prediction)`); `raw=True`: of
    `prediction` as given.
    """
    _check_inputs(prediction, answers)
    submitted = prediction if raw else normalize_vqa_answer(prediction)
    normalized = normalize_vqa_eval_answer(clean_whitespace(submitted), VIZWIZ_CONTRACTIONS)
    return leave_one_out_accuracy(normalized, list(answers))
