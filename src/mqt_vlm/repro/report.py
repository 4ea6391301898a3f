"""Evaluation and the report of the reproduction: every model at every budget, by question type,
as a table (Markdown + CSV) and a figure like the paper's MQT-versus-fixed-budget plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path
import re
from typing import Any

import torch

QUESTION_TYPES = ("global", "count", "cell", "relation")
METRICS = ("accuracy", *(f"accuracy_{t}" for t in QUESTION_TYPES), "describe_cell", "describe_cell_tf")
TITLES = {"accuracy": "all questions", "describe_cell": "describe, per cell (generated)",
          "describe_cell_tf": "describe, per cell (teacher-forced)"}


@torch.no_grad()
def describe_teacher_forced(model: Any, processor: Any, data: Path, budgets: tuple[int, ...], limit: int | None,
                            batch_size: int = 32, template: str = "vicuna_v1") -> dict[int, float]:
    """Per-cell description accuracy with the true description as the prefix (budget -> percent).

    A cell is right when every token of its content ("red circle" or "none") is the argmax given the
    true text before it. The tower runs once per image: the prefix property makes the tokens at m
    the first m of the tokens at M. `template="plain"` scores a stage-1 model in its own format
    (`<image>` then the description, no question).
    """
    from PIL import Image

    from mqt_vlm.data.encode import IGNORE_INDEX, encode_segments, expand
    from mqt_vlm.eval.benchmarks.base import read_jsonl
    from mqt_vlm.processing.templates import Segment, render

    records = read_jsonl(data / "test_describe.jsonl")[: limit or None]
    tokenizer = processor.tokenizer
    samples = []
    for record in records:
        pieces: list[Segment] = []
        user = "<image>" if template == "plain" else f"<image>\n{record['text']}"
        for segment in render([("user", user), ("assistant", record["answer"])], template):
            if not segment.target:
                pieces.append(segment)
                continue
            # only each cell's content ("red circle" / "none") is scored: one target segment per cell
            for k, part in enumerate(re.split(r"(?<=: )([^.]+)", segment.text)):
                if part:
                    pieces.append(Segment(part, target=k % 2 == 1))
        samples.append(encode_segments(pieces, tokenizer, processor.image_token_id, processor.image_token))
    hits: dict[int, list[int]] = {m: [] for m in budgets}
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        pixels = processor.image_processor([Image.open(data / r["image"]).convert("RGB") for r in chunk])["pixel_values"]
        visual = model.mqt(model.get_image_features(pixels.to(model.dtype)), model.num_queries)  # [I, M, D]
        for m in budgets:
            expanded = [expand(sample, m, 10**6, processor.image_token_id) for sample in samples[start:start + batch_size]]
            width = max(len(ids) for ids, _ in expanded)
            ids = torch.full((len(expanded), width), tokenizer.pad_token_id)  # right padding: no position shift
            labels = torch.full((len(expanded), width), IGNORE_INDEX)
            mask = torch.zeros((len(expanded), width), dtype=torch.long)
            for row, (row_ids, row_labels) in enumerate(expanded):
                ids[row, :len(row_ids)] = torch.tensor(row_ids)
                labels[row, :len(row_labels)] = torch.tensor(row_labels)
                mask[row, :len(row_ids)] = 1
            logits = model(input_ids=ids, attention_mask=mask, visual_embeds=visual[:, :m], num_visual_tokens=m).logits
            right = logits[:, :-1].argmax(-1) == labels[:, 1:]  # [B, L-1]: token t+1 predicted at t
            scored = labels[:, 1:] != IGNORE_INDEX
            for row in range(len(expanded)):
                run: list[bool] = []
                for t in range(width - 1):
                    if scored[row, t]:
                        run.append(bool(right[row, t]))
                    elif run:  # a cell's content ended
                        hits[m].append(int(all(run)))
                        run = []
                if run:
                    hits[m].append(int(all(run)))
    return {m: 100.0 * sum(v) / len(v) for m, v in hits.items() if v}


def evaluate_models(models: dict[str, Path], data: Path, out: Path, budgets: tuple[int, ...], limit: int | None,
                    describe_limit: int | None = None) -> list[dict[str, Any]]:
    """Rows {model, budget, metric, score}: the synthetic benchmark of the eval harness (questions by
    type, generated descriptions per cell) and teacher-forced descriptions per cell."""
    from mqt_vlm.eval.benchmarks import get_benchmark
    from mqt_vlm.eval.generator import ModelGenerator
    from mqt_vlm.eval.sweep import SweepConfig, run_sweep
    from mqt_vlm.loading import load_model

    rows: list[dict[str, Any]] = []
    for name, folder in models.items():
        model, processor = load_model(folder)
        usable = tuple(m for m in budgets if m <= model.num_queries)
        config = SweepConfig(benchmarks=[get_benchmark("synthetic")], budgets=usable, data_root=data, out=out / name,
                             model=str(folder), limit=limit, batch_size=64, plots=False, progress=False)
        result = run_sweep(config, ModelGenerator(model, processor), echo=lambda _: None)
        rows += [{"model": name, "budget": r.budget, "metric": r.metric, "score": r.score} for r in result.rows]
        forced = describe_teacher_forced(model, processor, data, usable, describe_limit)
        rows += [{"model": name, "budget": m, "metric": "describe_cell_tf", "score": v} for m, v in forced.items()]
    return rows


def _score(rows: list[dict[str, Any]], model: str, budget: int, metric: str = "accuracy") -> float | None:
    for row in rows:
        if row["model"] == model and row["budget"] == budget and row["metric"] == metric:
            return float(row["score"])
    return None


def comparison(rows: list[dict[str, Any]], fixed_budgets: tuple[int, ...], metric: str = "accuracy") -> list[dict[str, Any]]:
    """MQT versus the fixed model trained at each budget, both evaluated at that budget."""
    out = []
    for m in fixed_budgets:
        mqt, fixed = _score(rows, "mqt", m, metric), _score(rows, f"fixed-{m}", m, metric)
        if mqt is not None and fixed is not None:
            out.append({"budget": m, "mqt": mqt, "fixed": fixed, "gap": mqt - fixed})
    return out


def _title(metric: str) -> str:
    return TITLES.get(metric, metric.replace("accuracy_", "") + " questions")


def write_tables(rows: list[dict[str, Any]], out: Path, fixed_budgets: tuple[int, ...], budgets: tuple[int, ...]) -> str:
    with (out / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["model", "budget", "metric", "score"])
        writer.writeheader()
        writer.writerows(rows)
    metrics = [m for m in METRICS if any(r["metric"] == m for r in rows)]
    short = {m: m.replace("accuracy_", "").replace("accuracy", "all") for m in metrics}
    lines = ["### MQT (random even budgets) versus a model trained at each fixed budget, evaluated at that budget", "",
             "| budget | " + " | ".join(f"{short[m]}: MQT / fixed" for m in metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for m in fixed_budgets:
        cells = []
        for metric in metrics:
            mqt, fixed = _score(rows, "mqt", m, metric), _score(rows, f"fixed-{m}", m, metric)
            cells.append("-" if mqt is None or fixed is None else f"{mqt:.1f} / {fixed:.1f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    models = sorted({r["model"] for r in rows}, key=lambda n: (n != "mqt", int(n.split("-")[1]) if "-" in n else 0))
    for metric in metrics:
        lines += ["", f"### {_title(metric)} (%), every model at every budget", "",
                  "| model | " + " | ".join(str(m) for m in budgets) + " |", "|---|" + "---|" * len(budgets)]
        for name in models:
            cells = [_score(rows, name, m, metric) for m in budgets]
            lines.append(f"| {name} | " + " | ".join("-" if c is None else f"{c:.1f}" for c in cells) + " |")
    table = "\n".join(lines) + "\n"
    (out / "results.md").write_text(table)
    (out / "comparison.json").write_text(json.dumps({t: comparison(rows, fixed_budgets, t) for t in metrics}, indent=2))
    return table


def plot(rows: list[dict[str, Any]], out: Path, fixed_budgets: tuple[int, ...], budgets: tuple[int, ...]) -> Path:
    """One panel per metric: MQT across budgets, each fixed model across budgets (thin) and at its own
    budget (squares), like the paper's MQT-versus-fixed figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if any(r["metric"] == m for r in rows)]
    columns = min(4, len(metrics))
    lines = -(-len(metrics) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(4 * columns, 3.4 * lines), sharey=True, squeeze=False)
    for axis, metric in zip(axes.flat, metrics):
        xs = [m for m in budgets if _score(rows, "mqt", m, metric) is not None]
        axis.plot(xs, [_score(rows, "mqt", m, metric) for m in xs], "o-", color="C0", lw=2, label="MQT (one model)")
        for k, m_fixed in enumerate(fixed_budgets):
            name = f"fixed-{m_fixed}"
            pts = [(m, _score(rows, name, m, metric)) for m in budgets]
            pts = [(m, v) for m, v in pts if v is not None]
            axis.plot([m for m, _ in pts], [v for _, v in pts], "-", color="C1", alpha=0.25, lw=1,
                      label="fixed model at other budgets" if k == 0 else None)
        own = [(m, _score(rows, f"fixed-{m}", m, metric)) for m in fixed_budgets]
        own = [(m, v) for m, v in own if v is not None]
        axis.plot([m for m, _ in own], [v for _, v in own], "s--", color="C1", label="fixed model at its budget")
        axis.set_xscale("log", base=2)
        axis.set_xticks(list(budgets))
        axis.set_xticklabels([str(m) for m in budgets])
        axis.set_title(_title(metric), fontsize=10)
        axis.set_xlabel("visual tokens")
        axis.grid(alpha=0.3)
    for axis in axes.flat[len(metrics):]:
        axis.axis("off")
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    path = out / "mqt_vs_fixed.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
