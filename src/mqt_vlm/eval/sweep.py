"""A budget sweep: every benchmark at every budget, then the scores, table and plots.

Order of work: load and validate each benchmark's files (fail before any generation), generate
(resumable, every budget of a batch from one encoding of its images, see `runner`), write the server/judge files, score with the pure scorers, and finally
write `metrics.json`, `results.csv`, `results.md` and `plots/`. Everything in OUT can be rebuilt
from `OUT/predictions` by rerunning the same command, which generates nothing new.

`OUT/run.json` records what produced the predictions (model, decoding overrides); a rerun with a
different model into the same OUT is refused, because mixing two models' answers in one file would
produce a number that belongs to neither.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mqt_vlm.budgets import parse_budgets
from mqt_vlm.errors import MQTError
from mqt_vlm.eval.benchmarks import Benchmark
from mqt_vlm.eval.generator import Generator
from mqt_vlm.eval.judge import JudgeConfig, how_to_judge, judge_benchmark
from mqt_vlm.eval.plots import plot_average, plot_scores
from mqt_vlm.eval.report import (
    ResultRow,
    covered_tasks,
    paper_average,
    write_markdown,
    write_metrics_json,
    write_results_csv,
)
from mqt_vlm.eval.runner import run_predictions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepConfig:
    benchmarks: Sequence[Benchmark]
    budgets: Sequence[int | str]  # ints, or "M"/"max" (mqt_vlm.budgets)
    data_root: Path
    out: Path
    model: str  # what produced the predictions, recorded in run.json
    limit: int | None = None
    batch_size: int = 8
    max_new_tokens: int | None = None
    baseline: Sequence[ResultRow] = ()
    judge: JudgeConfig | None = None
    progress: bool = True
    plots: bool = True


@dataclass
class SweepResult:
    rows: list[ResultRow]
    metrics: dict[str, dict[str, Any]]
    files: dict[str, list[Path]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _check_run(config: SweepConfig) -> None:
    """Refuse to mix predictions of different models/decoding settings in one OUT."""
    path = config.out / "run.json"
    settings = {"model": config.model, "max_new_tokens": config.max_new_tokens}
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if {k: previous.get(k) for k in settings} != settings and (config.out / "predictions").is_dir():
            raise MQTError(
                f"{config.out} holds predictions from {previous} but this run is {settings}; use another --out "
                "(or delete its predictions folder) so the two are not mixed."
            )
    config.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")


def _load(benchmark: Benchmark, config: SweepConfig) -> list:
    items = benchmark.load(benchmark.data_dir(config.data_root))
    if config.limit is not None:
        if config.limit < 1:
            raise MQTError(f"--limit must be >= 1, got {config.limit}.")
        items = benchmark.limit(items, config.limit)
    return items


def run_sweep(config: SweepConfig, generator: Generator, echo: Callable[[str], None] = print) -> SweepResult:
    """Evaluate `generator` on every benchmark at every budget and write the report files."""
    if not config.budgets:
        raise MQTError("No budget given; pass e.g. --budgets 2,4,8,16,36,64,144,256.")
    budgets = sorted(int(m) for m in parse_budgets(config.budgets, generator.num_queries))
    _check_run(config)
    loaded = [(benchmark, _load(benchmark, config)) for benchmark in config.benchmarks]  # validate all first
    result = SweepResult(rows=[], metrics={})
    for benchmark, items in loaded:
        per_budget: dict[str, Any] = {}
        by_budget = run_predictions(benchmark.name, items, budgets, generator, config.out, config.batch_size,
                                    config.max_new_tokens, config.progress)  # every budget per batch: one encoding
        for budget in budgets:
            records = by_budget[budget]
            predictions = {key: record["text"] for key, record in records.items()}
            files: list[Path] = []
            if benchmark.submit is not None:
                folder = config.out / "submissions" / benchmark.name / f"m{budget:03d}"
                files = benchmark.submit(items, predictions, benchmark.data_dir(config.data_root), folder)
            metrics: dict = {}
            if benchmark.score is not None:
                metrics = benchmark.score(items, predictions)
            elif benchmark.judged and config.judge is not None:
                cache = config.out / "judge" / benchmark.name / f"m{budget:03d}.jsonl"
                metrics = judge_benchmark(benchmark.name, items, predictions, cache, config.judge)
            text_tokens = [r["text_tokens"] for r in records.values()]
            tflops = generator.tflops(budget, round(sum(text_tokens) / len(text_tokens))) if text_tokens else None
            seconds = sum(float(r.get("seconds", 0.0)) for r in records.values())
            for metric, score in benchmark.rows(metrics).items():
                result.rows.append(ResultRow(benchmark.name, metric, budget, score, tflops, seconds))
            per_budget[str(budget)] = {"metrics": metrics, "questions": len(items), "tflops": tflops,
                                       "seconds": seconds, "files": [str(f) for f in files]}
            result.files.setdefault(benchmark.name, []).extend(files)
        result.metrics[benchmark.name] = {"source": benchmark.source, "budgets": per_budget}
        files = result.files.get(benchmark.name, [])
        if benchmark.judged and config.judge is None:
            result.notes.append(how_to_judge(benchmark.name, files))
        elif not any(row.benchmark == benchmark.name for row in result.rows) and files:
            shown = ", ".join(str(f) for f in files)
            result.notes.append(f"{benchmark.display} has no public answers here: upload {shown} to its test server.")
    _write_report(config, result)
    for note in result.notes:
        echo(note)
    return result


def _write_report(config: SweepConfig, result: SweepResult) -> None:
    average = paper_average(result.rows)
    rows = result.rows + average
    headline = [(b.name, metric) for b in config.benchmarks for metric in b.headline
                if any((r.benchmark, r.metric) == (b.name, metric) for r in rows)]
    headline += list(dict.fromkeys((r.benchmark, r.metric) for r in average))
    if any(r.metric == "partial_avg" for r in average):
        result.notes.append("The average covers " + ", ".join(covered_tasks(result.rows))
                            + " (not all 11 of the paper's tasks), so it is not comparable with the paper's.")
    write_metrics_json(result.metrics, config.out / "metrics.json")
    write_results_csv(rows, config.out / "results.csv")
    write_markdown(rows, config.baseline, headline, config.out / "results.md", result.notes)
    result.rows = rows
    if not config.plots:
        return
    panels = [h for h in headline if h[0] != "average"]
    plot_scores(rows, config.baseline, panels, config.out / "plots" / "scores_vs_budget.png")
    title = "11-task average" if any(r.metric == "avg11" for r in average) else "average of the paper tasks run"
    plot_average(rows, config.baseline, config.out / "plots" / "average.png", title)
