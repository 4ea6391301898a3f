"""The sweep's figures: score versus budget per benchmark, and the paper's average versus budget
and versus TFLOPs (the paper's accuracy-versus-compute plot).

matplotlib is an optional dependency (the `eval` extra) and is imported only here, through
`matplotlib.figure.Figure`, so no global backend is switched and nothing needs a display.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from mqt_vlm.eval.report import ResultRow, label

logger = logging.getLogger(__name__)


def _figure(width: float, height: float):  # -> matplotlib.figure.Figure
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    # margins in inches, so one-row and many-row figures look alike
    figure.subplots_adjust(left=0.7 / width, right=1 - 0.2 / width, bottom=0.55 / height, top=1 - 0.45 / height,
                           wspace=0.3, hspace=0.6)
    return figure


def _series(rows: Sequence[ResultRow], benchmark: str, metric: str, model: str | None = None) -> list[ResultRow]:
    return sorted((r for r in rows if (r.benchmark, r.metric) == (benchmark, metric) and (model is None or r.model == model)),
                  key=lambda r: r.budget)


def _budget_axis(axis, budgets: Sequence[int]) -> None:
    axis.set_xscale("log", base=2)
    axis.minorticks_off()
    axis.set_xticks(sorted(set(budgets)))
    axis.set_xticklabels([str(b) for b in sorted(set(budgets))], fontsize=7)
    axis.set_xlabel("visual tokens m")
    axis.grid(alpha=0.3)


def plot_scores(rows: Sequence[ResultRow], baseline: Sequence[ResultRow], panels: Sequence[tuple[str, str]], path: Path) -> Path | None:
    """One panel per (benchmark, metric): ours solid, each baseline model dashed."""
    panels = [p for p in panels if _series(rows, *p)]
    if not panels:
        return None
    try:
        columns = min(3, len(panels))
        figure = _figure(4.0 * columns, 3.0 * ((len(panels) + columns - 1) // columns))
    except ImportError:
        logger.warning("matplotlib is not installed (pip install 'mqt-vlm[eval]'); skipping %s.", path.name)
        return None
    axes = figure.subplots((len(panels) + columns - 1) // columns, columns, squeeze=False).ravel()
    for axis, (benchmark, metric) in zip(axes, panels):
        ours = _series(rows, benchmark, metric)
        axis.plot([r.budget for r in ours], [r.score for r in ours], "o-", label="this run")
        budgets = [r.budget for r in ours]
        for model in dict.fromkeys(r.model for r in baseline):
            theirs = _series(baseline, benchmark, metric, model)
            if theirs:
                axis.plot([r.budget for r in theirs], [r.score for r in theirs], "s--", alpha=0.7, label=model)
                budgets += [r.budget for r in theirs]
        _budget_axis(axis, budgets)
        axis.set_title(label(benchmark, metric), fontsize=10)
        axis.legend(fontsize=7)
    for axis in axes[len(panels):]:
        axis.set_visible(False)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def plot_average(rows: Sequence[ResultRow], baseline: Sequence[ResultRow], path: Path, title: str) -> Path | None:
    """The paper's average versus budget (left) and versus TFLOPs per prompt (right)."""
    ours = [r for r in rows if r.benchmark == "average"]
    if not ours:
        return None
    try:
        figure = _figure(9.0, 3.4)
    except ImportError:
        logger.warning("matplotlib is not installed (pip install 'mqt-vlm[eval]'); skipping %s.", path.name)
        return None
    by_budget, by_flops = figure.subplots(1, 2)
    ours = sorted(ours, key=lambda r: r.budget)
    by_budget.plot([r.budget for r in ours], [r.score for r in ours], "o-", label="this run")
    budgets = [r.budget for r in ours]
    with_flops = [r for r in ours if r.tflops is not None]
    if with_flops:
        by_flops.plot([r.tflops for r in with_flops], [r.score for r in with_flops], "o-", label="this run")
    for model in dict.fromkeys(r.model for r in baseline):
        theirs = sorted((r for r in baseline if r.model == model and (r.benchmark, r.metric) == ("average", ours[0].metric)),
                        key=lambda r: r.budget)
        if not theirs:
            continue
        by_budget.plot([r.budget for r in theirs], [r.score for r in theirs], "s--", alpha=0.7, label=model)
        budgets += [r.budget for r in theirs]
        flops = [r for r in theirs if r.tflops is not None]
        if flops:
            by_flops.plot([r.tflops for r in flops], [r.score for r in flops], "s--", alpha=0.7, label=model)
    _budget_axis(by_budget, budgets)
    by_budget.set_ylabel("score")
    flops = [line_x for line in by_flops.get_lines() for line_x in line.get_xdata()]
    if flops and max(flops) / max(min(flops), 1e-30) > 20:  # the paper's 1-9 TFLOPs next to a tiny model's
        by_flops.set_xscale("log")
        by_flops.minorticks_off()
    by_flops.set_xlabel("TFLOPs per prompt")
    by_flops.grid(alpha=0.3)
    for axis in (by_budget, by_flops):
        axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
