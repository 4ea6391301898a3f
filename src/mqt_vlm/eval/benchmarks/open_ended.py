"""Free-form benchmarks judged by an LLM: LLaVA-Bench (in-the-wild) and MM-Vet.

Sources: LLaVA scripts/v1_5/eval/{llavabench,mmvet}.sh and llava/eval/model_vqa.py (the question
text as is, no suffix, 1024 new tokens), scripts/convert_mmvet_for_eval.py (the MM-Vet results file
is {"v1_<question_id>": answer}). The answer files written here are the ones those scripts write, so
they can also be judged with the official tools; `mqt_vlm.eval.judge` judges them in-process when an
OpenAI-compatible endpoint is configured.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.benchmarks.base import (
    LONG_ANSWER_MAX_NEW_TOKENS,
    Benchmark,
    EvalItem,
    check_images,
    read_json,
    read_jsonl,
    require_fields,
    require_file,
    unique_keys,
)

MODEL_ID = "mqt_vlm"


def _free_form_items(root: Path, questions: str, name: str) -> tuple[list[dict], list[EvalItem]]:
    path = require_file(root / questions, f"{name} question file")
    records = read_jsonl(path)
    for i, record in enumerate(records):
        require_fields(record, ("question_id", "image", "text"), f"{path} line {i + 1}")
    items = [
        EvalItem(key=key, question_id=r["question_id"], text=r["text"], image=root / "images" / r["image"],
                 max_new_tokens=LONG_ANSWER_MAX_NEW_TOKENS, subset=str(r.get("category", "")))
        for key, r in zip(unique_keys([r["question_id"] for r in records]), records)
    ]
    return records, items


# ---- LLaVA-Bench (in-the-wild) ------------------------------------------------------------------


def load_llavabench(root: Path) -> list[EvalItem]:
    records, items = _free_form_items(root, "questions.jsonl", "LLaVA-Bench")
    contexts = {c["image"]: c for c in read_jsonl(require_file(root / "context.jsonl", "LLaVA-Bench context.jsonl"))}
    references = read_jsonl(require_file(root / "answers_gpt4.jsonl", "LLaVA-Bench answers_gpt4.jsonl"))
    if len(references) != len(records):
        raise MQTError(
            f"LLaVA-Bench: {len(records)} questions but {len(references)} reference answers; the judge pairs "
            "them by order (eval_gpt_review_bench.py), so both files must come from the same release."
        )
    out = []
    for item, record, reference in zip(items, records, references):
        context = contexts.get(record["image"])
        if context is None:
            raise MQTError(f"LLaVA-Bench image {record['image']!r} has no entry in context.jsonl.")
        caption = context["caption"]
        out.append(replace(item, meta={
            "caption": "\n".join(caption) if isinstance(caption, list) else str(caption),
            "category": record.get("category", ""), "reference": reference["text"],
            "reference_id": reference.get("answer_id", reference.get("question_id")),
        }))
    check_images(out, "LLaVA-Bench")
    return out


def submit_llavabench(items: Sequence[EvalItem], predictions: Mapping[str, str], data: Path, out: Path) -> list[Path]:
    """The answers file model_vqa.py writes, in question order (what eval_gpt_review_bench.py reads)."""
    path = out / "llava-bench-answers.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"question_id": i.question_id, "prompt": i.text, "text": predictions[i.key],
                    "answer_id": f"{MODEL_ID}-{i.key}", "model_id": MODEL_ID, "metadata": {}}, ensure_ascii=False)
        for i in items if i.key in predictions
    ]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return [path]


# ---- MM-Vet -------------------------------------------------------------------------------------


def load_mmvet(root: Path) -> list[EvalItem]:
    _, items = _free_form_items(root, "llava-mm-vet.jsonl", "MM-Vet")
    truth_path = root / "mm-vet.json"
    truth = read_json(truth_path) if truth_path.is_file() else {}
    out = []
    for item in items:
        record = truth.get(f"v1_{item.question_id}")
        meta = {} if record is None else {
            "question": record["question"], "answer": record["answer"], "capability": list(record["capability"])}
        out.append(replace(item, meta=meta))
    check_images(out, "MM-Vet")
    return out


def submit_mmvet(items: Sequence[EvalItem], predictions: Mapping[str, str], data: Path, out: Path) -> list[Path]:
    """The results file MM-Vet's evaluator reads ({"v1_<id>": answer}, convert_mmvet_for_eval.py)."""
    path = out / "mm-vet-results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    results = {f"v1_{i.question_id}": predictions[i.key] for i in items if i.key in predictions}
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    return [path]


def judged_rows(metrics: dict) -> dict[str, float]:
    """Judge metrics are already in the papers' units (relative score / percent)."""
    return {name: float(value) for name, value in metrics.items() if isinstance(value, (int, float))}


BENCHMARKS = (
    Benchmark("llavabench", "LLaVA-Bench", "llava-bench-in-the-wild", load_llavabench, None, judged_rows,
              ("relative_score",), submit=submit_llavabench, judged=True,
              source="LLaVA eval_gpt_review_bench.py + summarize_gpt_review.py (LLM judge)"),
    Benchmark("mmvet", "MM-Vet", "mm-vet", load_mmvet, None, judged_rows, ("total",), submit=submit_mmvet,
              judged=True, source="MM-Vet mm-vet_evaluator.py (LLM grader)"),
)
