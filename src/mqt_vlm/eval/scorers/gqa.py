"""GQA correctness, reproducing LLaVA's conversion plus the official GQA evaluation.

Sources: LLaVA scripts/convert_gqa_for_eval.py (commit ce1aa08d129bd7df931a7067bcb79cf3cb3a1af5;
`text.rstrip('.').lower()`, written as {"questionId", "prediction"}) and the GQA eval.py from
gqadataset.org (`correct = (predicted == gold)`, averaged over the balanced questions;
testdev_balanced is all balanced).

Quirks reproduced: only trailing periods are stripped, never whitespace, so "yes. " and "yes.\\n"
stay wrong; a leading space stays wrong; no articles, punctuation or number words are normalised
("the table" != "table", "2" != "two"); the gold answer is compared as given (GQA's are lower-case).
"""

from __future__ import annotations

from mqt_vlm.errors import MQTError


def gqa_prediction(prediction: str) -> str:
    """The string LLaVA writes into the GQA predictions file for one raw model answer."""
    if not isinstance(prediction, str):
        raise MQTError(f"prediction must be a str, got {type(prediction).__name__}.")
    return prediction.rstrip(".").lower()


def gqa_correct(prediction: str, answer: str) -> bool:
    """Exact match of the converted prediction against the gold answer."""
    return gqa_prediction(prediction) == answer
