"""Evaluation and the report of the reproduction: every model at every budget, by question type,
as a table (Markdown + CSV) and a figure like the paper's MQT-versus-fixed-budget plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

QUESTION_TYPES = ("global", "count", "cell", "relation")


def evaluate_models(models: dict[str, Path], data: Path, out: Path, budgets: tuple[int, ...], limit: int | None) -> list[dict[str, Any]]:
    """Rows {model, budget, metric, score} from the synthetic benchmark of the eval harness."""
    from mqt_vlm.eval.benchmarks import get_benchmark
    from mqt_vlm.eval.generator import ModelGenerator
    from mqt_vlm.eval.sweep import SweepConfig, run_sweep
    from mqt_vlm.loading import load_model

    rows: list[dict[str, Any]] = []
    for name, folder in models.items():
        model, processor = load_model(folder)
        usable = tuple(m for m in budgets if m <= model.num_queries)
        config = SweepConfig(benchmarks=[get_benchmark("synthetic")], budgets=usable, data_root=data, out=out / name,
                             model=str(folder), limit=limit, batch_size=64, max_new_tokens=4, plots=False)
        result = run_sweep(config, ModelGenerator(model, processor), echo=lambda _: None)
        rows += [{"model": name, "budget": r.budget, "metric": r.metric, "score": r.score} for r in result.rows]
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


def write_tables(rows: list[dict[str, Any]], out: Path, fixed_budgets: tuple[int, ...], budgets: tuple[int, ...]) -> str:
    with (out / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["model", "budget", "metric", "score"])
        writer.writeheader()
        writer.writerows(rows)
    metrics = ["accuracy"] + [f"accuracy_{t}" for t in QUESTION_TYPES]
    lines = ["### MQT (random even budgets) versus a model trained at each fixed budget, evaluated at that budget", "",
             "| budget | " + " | ".join(f"{m.replace('accuracy_', '') if m != 'accuracy' else 'all'}: MQT / fixed" for m in metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for m in fixed_budgets:
        cells = []
        for metric in metrics:
            mqt, fixed = _score(rows, "mqt", m, metric), _score(rows, f"fixed-{m}", m, metric)
            cells.append("-" if mqt is None or fixed is None else f"{mqt:.1f} / {fixed:.1f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    models = sorted({r["model"] for r in rows}, key=lambda n: (n != "mqt", int(n.split("-")[1]) if "-" in n else 0))
    lines += ["", "### Every model at every budget (overall accuracy, %)", "",
              "| model | " + " | ".join(str(m) for m in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for name in models:
        cells = [_score(rows, name, m) for m in budgets]
        lines.append(f"| {name} | " + " | ".join("-" if c is None else f"{c:.1f}" for c in cells) + " |")
    table = "\n".join(lines) + "\n"
    (out / "results.md").write_text(table)
    (out / "comparison.json").write_text(json.dumps({t: comparison(rows, fixed_budgets, t) for t in metrics}, indent=2))
    return table


def plot(rows: list[dict[str, Any]], out: Path, fixed_budgets: tuple[int, ...], budgets: tuple[int, ...]) -> Path:
    """One panel per question type (and overall): MQT across budgets, fixed models at their budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ["accuracy"] + [f"accuracy_{t}" for t in QUESTION_TYPES]
    figure, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4), sharey=True)
    for axis, metric in zip(axes, metrics):
        xs = [m for m in budgets if _score(rows, "mqt", m, metric) is not None]
        axis.plot(xs, [_score(rows, "mqt", m, metric) for m in xs], "o-", label="MQT (one model)")
        fixed = [(m, _score(rows, f"fixed-{m}", m, metric)) for m in fixed_budgets]
        fixed = [(m, s) for m, s in fixed if s is not None]
        axis.plot([m for m, _ in fixed], [s for _, s in fixed], "s--", label="fixed budget (one model each)")
        axis.set_xscale("log", base=2)
        axis.set_xticks(list(budgets))
        axis.set_xticklabels([str(m) for m in budgets])
        axis.set_title("all questions" if metric == "accuracy" else metric.replace("accuracy_", "") + " questions")
        axis.set_xlabel("visual tokens")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    path = out / "mqt_vs_fixed.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
