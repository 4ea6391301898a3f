"""TEST ORACLE -- not part of the library. LLaVA's GQA conversion plus the GQA eval.py accuracy.

Sources:
* repository haotian-liu/LLaVA, file scripts/convert_gqa_for_eval.py at commit
  ce1aa08d129bd7df931a7067bcb79cf3cb3a1af5: the per-line conversion (`convert_line` below is the loop
  body, returning the entry instead of appending it; `text = res['text'].rstrip('.').lower()`).
* the GQA evaluation script eval.py from gqadataset.org (the file LLaVA's docs/Evaluation.md points
  to): predictions loaded as `{p["questionId"]: p["prediction"] for p in predictions}` and, per
  question, `correct = (predicted == gold)`, `score = float(1 if correct else 0)`, averaged over the
  balanced questions (`accuracy` below; the JSON round trip of the predictions file is identity for str).
Used only by tests/eval/test_scorers_differential.py.
"""

# ruff: noqa


def convert_line(res):
    question_id = res['question_id']
    text = res['text'].rstrip('.').lower()
    return {"questionId": question_id, "prediction": text}


def accuracy(questions, predictions):
    """questions: {qid: {"answer": str, "isBalanced": bool}}; predictions: the converted entries."""
    predictions = {p["questionId"]: p["prediction"] for p in predictions}
    scores = []
    for qid in questions:
        question = questions[qid]
        gold = question["answer"]
        predicted = predictions[qid]
        correct = (predicted == gold)
        score = float(1 if correct else 0)
        if question["isBalanced"]:
            scores.append(score)
    return scores
