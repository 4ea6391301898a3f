"""`mqt eval`: a budget sweep over the paper's benchmarks, from LLaVA-1.5's eval data layout."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from mqt_vlm.errors import MQTError

DEFAULT_BUDGETS = "2,4,8,16,36,64,144,256"


def evaluate(
    model: str = typer.Option("builtin:shapes", help="Model folder (save_pretrained / mqt convert / mqt train) or builtin:NAME."),
    benchmarks: str = typer.Option(..., help="Comma-separated: vqav2, gqa, vizwiz, textvqa, pope, mme, scienceqa, "
                                             "mmbench, mmbench_cn, seed, mmmu, llavabench, mmvet, synthetic."),
    budgets: str = typer.Option(DEFAULT_BUDGETS, help="Comma-separated visual-token budgets m (each 1..M; M = all "
                                                      "queries). Each image is encoded once for all of them."),
    data_root: Path = typer.Option(..., help="LLaVA-1.5's playground/data/eval folder (docs/evaluation.md), or "
                                             "a folder written by `mqt data synth` for the synthetic benchmark."),
    out: Path = typer.Option(..., help="Output folder; rerunning into it resumes and skips finished predictions."),
    limit: int | None = typer.Option(None, help="Only the first N questions per benchmark (per POPE split and "
                                                "per MME task, per synthetic question type), for quick runs."),
    batch_size: int = typer.Option(8, help="Questions per generate call (1 = LLaVA's one-at-a-time decoding)."),
    baseline: str | None = typer.Option(None, help="Published numbers to compare with: 'paper' (MQT-LLaVA-7B and "
                                                   "LLaVA-1.5-7B, shipped) or a CSV with columns model, "
                                                   "benchmark, metric, budget, score (and tflops)."),
    max_new_tokens: int | None = typer.Option(None, help="Override every benchmark's LLaVA default (128 short "
                                                         "answers, 1024 long) for smoke runs."),
    device: str = typer.Option("auto", help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N."),
    dtype: str | None = typer.Option(None, help="float32, bfloat16 or float16 (or fp32, bf16, fp16; default: the "
                                                "checkpoint's)."),
    judge_url: str | None = typer.Option(None, envvar="MQT_JUDGE_URL", help="OpenAI-compatible base URL (e.g. "
                                         "https://api.openai.com/v1) to judge LLaVA-Bench and MM-Vet; key in "
                                         "OPENAI_API_KEY."),
    judge_model: str | None = typer.Option(None, envvar="MQT_JUDGE_MODEL", help="Judge model (default: the "
                                           "original gpt-4-0314 / gpt-4-0613)."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Evaluate a model on the paper's benchmarks at several visual-token budgets.

    Writes under OUT: predictions/ (one .jsonl per benchmark and budget), metrics.json,
    results.csv (benchmark, metric, budget, score, tflops, seconds), results.md and plots/.
    """
    from mqt_vlm.budgets import parse_budgets
    from mqt_vlm.eval.benchmarks import parse_benchmarks
    from mqt_vlm.eval.generator import ModelGenerator
    from mqt_vlm.eval.judge import JudgeConfig
    from mqt_vlm.eval.report import read_baseline
    from mqt_vlm.eval.sweep import SweepConfig, run_sweep
    from mqt_vlm.loading import load_model

    chosen = parse_benchmarks(benchmarks)  # fail on a typo before loading the model
    budget_list = parse_budgets(budgets, None)  # the syntax now; the range (1..M) once the model is loaded
    baseline_rows = read_baseline(baseline) if baseline else []
    if not data_root.is_dir():
        raise MQTError(f"--data-root {data_root} is not a folder.")
    judge = None
    if judge_url:
        judge = JudgeConfig(base_url=judge_url, model=judge_model,
                            api_key=os.environ.get("MQT_JUDGE_API_KEY") or os.environ.get("OPENAI_API_KEY"))
    loaded, processor = load_model(model, dtype=dtype, device=device)
    config = SweepConfig(benchmarks=chosen, budgets=budget_list, data_root=data_root, out=out, model=str(model),
                         limit=limit, batch_size=batch_size, max_new_tokens=max_new_tokens, baseline=baseline_rows,
                         judge=judge, progress=progress)
    run_sweep(config, ModelGenerator(loaded, processor), echo=lambda _: None)  # notes are in results.md
    typer.echo((out / "results.md").read_text(encoding="utf-8"))
    typer.echo(f"wrote {out / 'results.csv'}, {out / 'metrics.json'}, {out / 'results.md'} and {out / 'plots'}")
