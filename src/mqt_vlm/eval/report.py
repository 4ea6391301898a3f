"""Sweep results as files: metrics.json, a tidy results.csv, a Markdown table like the paper's.

results.csv has one row per (benchmark, metric, budget): `benchmark, metric, budget, score, tflops,
seconds`. Scores are in the papers' units: accuracies in percent, MME in points (perception out of
2000, cognition out of 800), LLaVA-Bench as the relative score. `tflops` is the analytic cost of
one average prompt of that benchmark at that budget; `seconds` is the generation wall time.

The paper's average over 11 tasks (DESIGN.md section 5): VQAv2, SQA-IMG, GQA, VizWiz, MME-P / 20,
MME-C / 8, POPE (F1), MMMU, MMBench, LLaVA-Bench and MM-Vet, each in percent. It is reported as
`average, avg11` when all 11 were scored at a budget; with fewer it is `average, partial_avg`, and
the table says which tasks it covers, so a partial number is never mistaken for the paper's.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from mqt_vlm.errors import MQTError

# (benchmark, metric, divisor): the paper's 11 tasks and how each enters the average
PAPER_TASKS: tuple[tuple[str, str, float], ...] = (
    ("vqav2", "accuracy", 1.0), ("scienceqa", "img_accuracy", 1.0), ("gqa", "accuracy", 1.0),
    ("vizwiz", "accuracy", 1.0), ("mme", "perception", 20.0), ("mme", "cognition", 8.0), ("pope", "f1", 1.0),
    ("mmmu", "accuracy", 1.0), ("mmbench", "accuracy", 1.0), ("llavabench", "relative_score", 1.0),
    ("mmvet", "total", 1.0),
)
LABELS = {
    ("mme", "perception"): "MME-P", ("mme", "cognition"): "MME-C", ("average", "avg11"): "11-task avg",
    ("average", "partial_avg"): "avg of the paper tasks run",
}
CSV_FIELDS = ("benchmark", "metric", "budget", "score", "tflops", "seconds")
PUBLISHED = "mqt_llava_7b.csv"


@dataclass(frozen=True)
class ResultRow:
    benchmark: str
    metric: str
    budget: int
    score: float
    tflops: float | None = None
    seconds: float | None = None
    model: str = ""  # set for baseline rows read from a CSV of published numbers


def label(benchmark: str, metric: str) -> str:
    """The row name in the table: the paper's name for headline metrics."""
    from mqt_vlm.eval.benchmarks import BENCHMARKS

    if (benchmark, metric) in LABELS:
        return LABELS[(benchmark, metric)]
    known = BENCHMARKS.get(benchmark)
    if known is not None and known.headline == (metric,):
        return known.display
    return f"{known.display if known else benchmark} {metric}"


def paper_average(rows: Iterable[ResultRow]) -> list[ResultRow]:
    """One `average` row per budget from the paper's tasks present at that budget."""
    by_budget: dict[int, dict[tuple[str, str], ResultRow]] = {}
    for row in rows:
        by_budget.setdefault(row.budget, {})[(row.benchmark, row.metric)] = row
    out = []
    for budget, found in sorted(by_budget.items()):
        used = [(found[(b, m)], d) for b, m, d in PAPER_TASKS if (b, m) in found]
        if not used:
            continue
        score = sum(row.score / divisor for row, divisor in used) / len(used)
        flops = [row.tflops for row, _ in used if row.tflops is not None]
        seconds = [row.seconds for row, _ in used if row.seconds is not None]
        out.append(ResultRow("average", "avg11" if len(used) == len(PAPER_TASKS) else "partial_avg", budget, score,
                             sum(flops) / len(flops) if flops else None, sum(seconds) if seconds else None))
    return out


def covered_tasks(rows: Iterable[ResultRow]) -> list[str]:
    present = {(r.benchmark, r.metric) for r in rows}
    return [label(b, m) for b, m, _ in PAPER_TASKS if (b, m) in present]


# ---- files -------------------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """JSON without NaN (a scorer's undefined precision, say, becomes null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_metrics_json(metrics: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(metrics), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_results_csv(rows: Sequence[ResultRow], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        for row in rows:
            writer.writerow([row.benchmark, row.metric, row.budget, f"{row.score:.4f}",
                             "" if row.tflops is None else f"{row.tflops:.6g}",
                             "" if row.seconds is None else f"{row.seconds:.3f}"])
    return path


def read_results_csv(path: Path, model: str = "") -> list[ResultRow]:
    """Rows of a results.csv, or of a published-numbers CSV (which adds a `model` column)."""
    if not path.is_file():
        raise MQTError(f"Baseline CSV not found: {path}.")
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"benchmark", "metric", "budget", "score"} - set(reader.fieldnames or ())
        if missing:
            raise MQTError(f"{path} lacks the columns {sorted(missing)}; expected {', '.join(CSV_FIELDS)} (+ model).")
        rows = []
        for number, record in enumerate(reader, 2):
            try:
                rows.append(ResultRow(
                    benchmark=record["benchmark"], metric=record["metric"], budget=int(record["budget"]),
                    score=float(record["score"]),
                    tflops=float(record["tflops"]) if record.get("tflops") else None,
                    seconds=float(record["seconds"]) if record.get("seconds") else None,
                    model=record.get("model") or model or path.stem,
                ))
            except ValueError as exc:
                raise MQTError(f"{path}:{number}: {exc}.") from None
    return rows


def published_csv() -> Path:
    """The shipped CSV of MQT-LLaVA-7B's (and LLaVA-1.5-7B's) published numbers (DESIGN.md section 5)."""
    return Path(str(resources.files("mqt_vlm.eval") / "published" / PUBLISHED))


def read_baseline(spec: str | Path) -> list[ResultRow]:
    """`--baseline paper` (the shipped numbers) or a path to any CSV in that format."""
    return read_results_csv(published_csv() if str(spec) == "paper" else Path(spec))


# ---- the Markdown table ------------------------------------------------------------------------------


def _fmt(benchmark: str, metric: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.0f}" if benchmark == "mme" else f"{value:.1f}"


def markdown_table(rows: Sequence[ResultRow], baseline: Sequence[ResultRow] = (), headline: Sequence[tuple[str, str]] = ()) -> str:
    """Benchmarks down, budgets across (as the paper's figure table); baseline rows under each of ours.

    `headline`: the (benchmark, metric) rows to show, in order (default: every metric of `rows`).
    """
    order = list(headline) or list(dict.fromkeys((r.benchmark, r.metric) for r in rows))
    if any(r.benchmark == "average" for r in rows) and not any(b == "average" for b, _ in order):
        order += [(r.benchmark, r.metric) for r in rows if r.benchmark == "average"][:1]
    shown_baseline = [r for r in baseline if (r.benchmark, r.metric) in order]
    budgets = sorted({r.budget for r in rows} | {r.budget for r in shown_baseline})
    ours = {(r.benchmark, r.metric, r.budget): r.score for r in rows}
    lines = ["| benchmark | " + " | ".join(str(b) for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    for benchmark, metric in order:
        cells = [_fmt(benchmark, metric, ours.get((benchmark, metric, b))) for b in budgets]
        lines.append(f"| {label(benchmark, metric)} | " + " | ".join(cells) + " |")
        for model in dict.fromkeys(r.model for r in shown_baseline if (r.benchmark, r.metric) == (benchmark, metric)):
            theirs = {r.budget: r.score for r in shown_baseline if (r.benchmark, r.metric, r.model) == (benchmark, metric, model)}
            cells = [_fmt(benchmark, metric, theirs.get(b)) for b in budgets]
            lines.append(f"| {label(benchmark, metric)} ({model}) | " + " | ".join(cells) + " |")
    flops = {}
    for budget in budgets:
        values = [r.tflops for r in rows if r.budget == budget and r.tflops is not None and r.benchmark != "average"]
        flops[budget] = sum(values) / len(values) if values else None
    if any(v is not None for v in flops.values()):
        lines.append("| TFLOPs / prompt | " + " | ".join("–" if flops[b] is None else f"{flops[b]:.3g}" for b in budgets) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(rows: Sequence[ResultRow], baseline: Sequence[ResultRow], headline: Sequence[tuple[str, str]],
                   path: Path, notes: Sequence[str] = ()) -> Path:
    text = "# Accuracy versus visual tokens\n\nColumns are the visual-token budget m.\n\n"
    text += markdown_table(rows, baseline, headline)
    if notes:
        text += "\n" + "\n".join(f"- {note}" for note in notes) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def rows_as_dicts(rows: Sequence[ResultRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
