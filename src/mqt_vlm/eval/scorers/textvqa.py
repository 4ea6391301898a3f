"""TextVQA accuracy, reproducing the m4c evaluator LLaVA uses.

Source: LLaVA llava/eval/m4c_evaluator.py (`TextVQAAccuracyEvaluator`, from facebookresearch/mmf),
driven by llava/eval/eval_textvqa.py (both at commit ce1aa08d129bd7df931a7067bcb79cf3cb3a1af5).

The official code normalises the prediction and all 10 human answers with `EvalAIAnswerProcessor`
(`normalize_vqa_answer`), scores every *unique* normalised answer as the mean over the 10
leave-one-out subsets of min(1, matches/3), and looks the prediction up in that table (0 if absent).
Looking a prediction up among the unique answers gives the same number as scoring it directly, which
is what we do.

Quirks reproduced:

* Unlike VQAv2, both sides always go through the full normaliser (lower-case, digits, articles), so
  "Two" matches a human "2" and "the Coca-Cola" matches "coca cola".
* "'s" is split off on both sides ("joe's" -> "joe 's"), "," and "?" are deleted outright
  ("1,000" -> "1000", "why?" -> "why").
* Exactly 10 answers are required (the original asserts it).
"""

from __future__ import annotations

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.scorers.answer_normalization import normalize_vqa_answer
from mqt_vlm.eval.scorers.vqa import leave_one_out_accuracy

TEXTVQA_NUM_ANSWERS = 10


def textvqa_accuracy(prediction: str, answers: list[str]) -> float:
    """TextVQA accuracy of one prediction against its 10 human answers, in [0, 1]."""
    if not isinstance(prediction, str):
        raise MQTError(f"prediction must be a str, got {type(prediction).__name__}.")
    if not isinstance(answers, (list, tuple)) or not all(isinstance(a, str) for a in answers):
        raise MQTError("answers must be a list of str (the human answers of one question).")
    if len(answers) != TEXTVQA_NUM_ANSWERS:
        raise MQTError(
            f"TextVQA questions have exactly {TEXTVQA_NUM_ANSWERS} human answers, got {len(answers)}; "
            "the m4c evaluator refuses anything else."
        )
    references = [normalize_vqa_answer(answer) for answer in answers]
    return leave_one_out_accuracy(normalize_vqa_answer(prediction), references)
