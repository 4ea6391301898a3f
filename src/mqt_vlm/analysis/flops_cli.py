"""`mqt flops`: the compute curve of an elastic VLM as a table, JSON or a plot."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mqt_vlm.analysis.flops import DEFAULT_TEXT_TOKENS, ModelShape, from_config, load_preset, model_flops
from mqt_vlm.budgets import parse_budgets
from mqt_vlm.cli.json_output import JsonFlag, JsonOut, emit
from mqt_vlm.errors import MQTError

ACCOUNTING = (
    "full vision tower + connector + LLM prefill of visual + text tokens (lm_head on the last "
    "position); multiply-add = 2 FLOPs; see docs/flops.md"
)


def model_shape(model: str) -> ModelShape:
    """The shape of a model folder or `builtin:NAME`, from its config.json alone (no weights are
    read): the tower up to the feature layer, as the model runs it."""
    from mqt_vlm.loading import resolve_model_path
    from mqt_vlm.modeling.configuration import MQTConfig

    path = resolve_model_path(model)
    try:
        config = MQTConfig.from_pretrained(path)
    except MQTError:
        raise
    except Exception as exc:  # a damaged or foreign config.json
        raise MQTError(f"{path / 'config.json'} is not a usable mqt_vlm config: {type(exc).__name__}: {exc}") from None
    return dataclasses.replace(from_config(config), name=model)


def flops_report(
    spec: ModelShape, budgets: list[int], baseline: ModelShape | None, text_tokens: int
) -> dict[str, Any]:
    """Rows of the table as plain data (the JSON output, and what the table and plot are drawn from)."""
    base = model_flops(baseline, None, text_tokens) if baseline is not None else None
    rows = []
    for m in budgets:
        result = model_flops(spec, m, text_tokens)
        rows.append(
            {
                "budget": m,
                **result.to_dict(),
                "speedup": base.total / result.total if base is not None else None,
                "paper_tflops": spec.reference_tflops.get(m),
            }
        )
    baseline_row = None
    if baseline is not None and base is not None:
        baseline_row = {
            "name": baseline.name,
            **base.to_dict(),
            "paper_tflops": baseline.reference_tflops.get(base.num_visual_tokens),
        }
    return {
        "preset": spec.name,
        "text_tokens": text_tokens,
        "accounting": ACCOUNTING,
        "reference_source": spec.reference_source or None,
        "baseline": baseline_row,
        "rows": rows,
    }


def format_table(report: dict[str, Any]) -> str:
    header = ("budget", "vision", "connector", "LLM prefill", "total", "speedup", "paper", "diff")
    lines = []

    def line(label: str, row: dict[str, Any], speedup: float | None) -> None:
        paper = row["paper_tflops"]
        diff = f"{100 * (row['total_tflops'] / paper - 1):+.1f}%" if paper else "-"
        cells = (
            label,
            f"{row['vision_tflops']:.3f}",
            f"{row['connector_tflops']:.4f}",
            f"{row['llm_prefill_tflops']:.3f}",
            f"{row['total_tflops']:.3f}",
            f"{speedup:.2f}x" if speedup is not None else "-",
            f"{paper:.2f}" if paper else "-",
            diff,
        )
        lines.append("  ".join(cell.rjust(11) for cell in cells))

    base = report["baseline"]
    title = f"{report['preset']}" + (f" vs {base['name']}" if base else "")
    lines.append(f"# {title}: TFLOPs per image, {report['text_tokens']} text tokens")
    lines.append(f"# {report['accounting']}")
    lines.append("  ".join(h.rjust(11) for h in header))
    for row in report["rows"]:
        line(str(row["budget"]), row, row["speedup"])
    if base:
        line(f"{base['num_visual_tokens']} (base)", base, 1.0)
    return "\n".join(lines)


def plot_curve(report: dict[str, Any], path: Path) -> Path:
    """TFLOPs against the budget (log2 axis), the paper's points and the baseline overlaid."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MQTError("Plotting needs matplotlib: pip install 'mqt-vlm[eval]'.") from exc
    fig = Figure(figsize=(6, 4), dpi=120)
    FigureCanvasAgg(fig)  # the Agg backend, without touching pyplot's global state
    ax = fig.add_subplot()
    rows = sorted(report["rows"], key=lambda r: r["budget"])
    ax.plot([r["budget"] for r in rows], [r["total_tflops"] for r in rows], "o-", label=f"{report['preset']} (ours)")
    paper = [(r["budget"], r["paper_tflops"]) for r in rows if r["paper_tflops"]]
    base = report["baseline"]
    if base:
        ax.axhline(base["total_tflops"], ls="--", color="grey", label=f"{base['name']} (ours)")
        ax.plot([base["num_visual_tokens"]], [base["total_tflops"]], "s", color="grey")
        if base["paper_tflops"]:
            paper.append((base["num_visual_tokens"], base["paper_tflops"]))
    if paper:
        ax.plot(*zip(*sorted(paper)), "x", ms=9, mew=2, color="C3", label="paper")
    ax.set_xscale("log", base=2)
    ticks = sorted({r["budget"] for r in rows} | ({base["num_visual_tokens"]} if base else set()))
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("visual tokens")
    ax.set_ylabel("TFLOPs per image")
    ax.set_title(f"Compute vs budget ({report['text_tokens']} text tokens)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def flops(
    preset: str = "mqt-llava-7b",
    model: str | None = None,
    budgets: str = "2,4,8,16,36,64,144,256",
    baseline: str | None = "llava-1.5-7b",
    text_tokens: int = DEFAULT_TEXT_TOKENS,
    as_json: JsonFlag = False,
    json_out: JsonOut = None,
    plot: Path | None = None,
) -> None:
    """Analytic TFLOPs per image at each visual-token budget, against a baseline.

    The count covers the vision tower, the connector and the LLM prefill of visual + text tokens
    (multiply-add = 2 FLOPs), with the speedup over the baseline and the paper's numbers where
    known. PRESET and BASELINE are shipped preset names or JSON paths; --model counts a model
    folder or builtin:NAME instead (from its config.json). --budgets: comma-separated, each 1..M
    (M = all queries). Pass --baseline none to skip the baseline. --plot FILE writes the curve as
    an image."""
    parse_budgets(budgets, None)  # a typo fails before anything is read
    spec = model_shape(model) if model is not None else load_preset(preset)
    base = None if baseline is None or baseline.lower() in ("", "none") else load_preset(baseline)
    report = flops_report(spec, [int(m) for m in parse_budgets(budgets, spec.max_visual_tokens)], base, text_tokens)
    if plot is not None:
        report["plot"] = str(plot_curve(report, plot))
    emit(report, as_json, json_out, lambda: format_table(report))
