"""The synthetic benchmark's lmms-eval hooks (named by the YAMLs next to this file).

Scoring reuses `mqt_vlm.eval.benchmarks.synthetic` (normalisation, per-cell description parsing),
so an lmms-eval score equals the `mqt eval --benchmarks synthetic` score on the same answers.
"""

from __future__ import annotations

from typing import Any

from mqt_vlm.eval.benchmarks.synthetic import describe_cells, normalize_synthetic


def doc_to_visual(doc: dict[str, Any]) -> list[Any]:
    return [doc["image"]]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """The bare question, as `mqt eval` asks it (the model was trained without a format suffix)."""
    return str(doc["question"])


def doc_to_choice(doc: dict[str, Any]) -> list[str]:
    return list(doc["choices"])


def doc_to_target_index(doc: dict[str, Any]) -> int:
    return list(doc["choices"]).index(doc["answer"])


def _of_type(kind: str) -> Any:
    def process_docs(dataset: Any) -> Any:
        return dataset.filter(lambda question_type: question_type == kind, input_columns="question_type")

    process_docs.__name__ = f"{kind}_docs"
    return process_docs


global_docs = _of_type("global")
count_docs = _of_type("count")
cell_docs = _of_type("cell")
relation_docs = _of_type("relation")
describe_docs = _of_type("describe")


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, int]:
    """Exact match after `mqt eval`'s normalisation (lower case, stripped, no trailing period)."""
    return {"accuracy": int(normalize_synthetic(results[0]) == normalize_synthetic(doc["answer"]))}


def process_describe(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """The share of the image's cells the description names right (every image has grid x grid cells,
    so the mean over images equals `mqt eval`'s mean over all cells)."""
    from mqt_vlm.data.synthetic_scene import parse_description

    truth = describe_cells(doc["answer"])
    grid = max(max(key) for key in truth)
    said = parse_description(results[0].lower(), grid)
    return {"describe_cell": sum(said.get(key) == value for key, value in truth.items()) / len(truth)}
