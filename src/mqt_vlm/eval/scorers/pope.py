"""POPE metrics, reproducing LLaVA's parser and counts.

Source: LLaVA llava/eval/eval_pope.py (`eval_pope`, commit
ce1aa08d129bd7df931a7067bcb79cf3cb3a1af5). LLaVA runs it once per category file
(adversarial, popular, random) and the LLaVA-1.5 paper reports the mean F1 over the three.

Parsing rule (`pope_says_yes`):
1. Keep only the text before the first "." (if there is one).
2. Delete every ",", split on single spaces (not on newlines or tabs).
3. "no" if one of the words is exactly "No", "no" or "not"; otherwise "yes".

Quirks reproduced: anything unrecognised counts as "yes" (an empty answer, "NO", "Nope", "Not",
"No!", "no\\nthere is"); "Yes, there is no dog." says "no" (the word "no" in the first sentence);
"Yes. No." says "yes" (only the first sentence is read). A label is "no" only when it is exactly
"no"; any other label counts as "yes".

Where the original divides by zero (no predicted "yes" for precision, no "yes" label for recall, or
precision + recall == 0 for F1) it crashes; we return NaN for that metric instead.
"""

from __future__ import annotations

import math

from mqt_vlm.errors import MQTError


def pope_says_yes(prediction: str) -> bool:
    """LLaVA's yes/no reading of one free-form answer (see the module docstring for the rule)."""
    text = prediction.split(".")[0]
    words = text.replace(",", "").split(" ")
    return not ("No" in words or "not" in words or "no" in words)


def _ratio(numerator: int | float, denominator: int | float) -> float:
    return numerator / denominator if denominator else math.nan


def pope_metrics(predictions: list[str], labels: list[str]) -> dict:
    """Accuracy, precision, recall, F1 and yes-ratio of one POPE split, as fractions in [0, 1].

    Also returns the raw counts (tp, fp, tn, fn) so callers can pool or audit them.
    """
    if len(predictions) != len(labels):
        raise MQTError(
            f"Got {len(predictions)} predictions for {len(labels)} labels; POPE needs one each "
            "(the original silently truncated to the shorter list)."
        )
    if not predictions:
        raise MQTError("POPE needs at least one prediction to score.")
    tp = fp = tn = fn = 0
    for prediction, label in zip(predictions, labels):
        predicted_yes = pope_says_yes(prediction)
        label_yes = label != "no"
        if predicted_yes and label_yes:
            tp += 1
        elif predicted_yes:
            fp += 1
        elif not label_yes:
            tn += 1
        else:
            fn += 1
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {
        "accuracy": (tp + tn) / (tp + tn + fp + fn),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": (tp + fp) / len(predictions),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }
