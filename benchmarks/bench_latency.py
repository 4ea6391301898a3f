"""The latency section of BENCHMARKS.md: both realistic shapes, MQT versus the LLaVA-style baseline,
measured next to the analytic FLOPs and the roofline, in one process (about 10 minutes on 2 cores).

    python benchmarks/bench_latency.py [--json-out results.json] [--quick]

Prints Markdown (machine, command, date, one table per shape) to paste into BENCHMARKS.md. The
shapes and the measuring live in `mqt_vlm.analysis.bench_cli` / `bench`; this script only picks
the settings the published numbers use and runs the shapes one after the other.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

SHAPES = (("smollm2-clip336", 2), ("vicuna7b-clip336", 2))


def lscpu_model_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def run_shape(shape: str, layers: int, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from mqt_vlm.analysis.bench_cli import DEFAULT_QUESTION, build_shape, default_image, run_bench
    from mqt_vlm.processing.templates import SHORT_ANSWER_SUFFIX

    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    log(f"building {shape}")
    model, processor, description = build_shape(shape, layers)
    prompt = processor.format_prompt(f"{DEFAULT_QUESTION}\n{SHORT_ANSWER_SUFFIX}")
    report = run_bench(
        model, processor, args.budgets, default_image(), prompt, repeats=args.repeats, new_tokens=args.new_tokens,
        batch_sizes=args.batch_sizes, baseline=True, log=log, quiet=args.quiet, clock=args.clock,
    )
    report["model"] = description
    report["threads"] = torch.get_num_threads()
    del model, processor
    gc.collect()
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="1 repeat, 2 new tokens, budgets 8,256 (a smoke run).")
    parser.add_argument("--quiet", type=float, default=0.1, help="Wait for other processes to use at most this fraction of the cores (negative: never wait).")
    parser.add_argument("--shapes", default=",".join(s for s, _ in SHAPES))
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: one torch thread timed by its CPU time, for a machine other processes keep busy.")
    args = parser.parse_args(argv)
    args.budgets = [8, 256] if args.quick else [8, 16, 64, 256]
    args.repeats, args.new_tokens = (1, 2) if args.quick else (3, 8)
    args.batch_sizes = [1, 4] if args.quick else [1, 4, 8]
    args.quiet = None if args.quiet < 0 else args.quiet

    import torch

    from mqt_vlm.analysis.bench_cli import format_report
    from mqt_vlm.analysis.roofline import default_threads

    torch.set_num_threads(1 if args.clock == "cpu" else default_threads())
    if args.clock == "cpu":
        args.quiet = None  # CPU time does not count the time other processes hold the core
    wanted = [s.strip() for s in args.shapes.split(",") if s.strip()]
    started = datetime.datetime.now(datetime.timezone.utc)
    reports = {shape: run_shape(shape, layers, args) for shape, layers in SHAPES if shape in wanted}
    minutes = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds() / 60
    command = "python benchmarks/bench_latency.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    print(f"Machine: `lscpu` model name {lscpu_model_name()!r}, {torch.get_num_threads()} torch thread(s), "
          f"{args.clock} clock, torch {torch.__version__}, fp32. Command: `{command.strip()}`. Date: {started:%Y-%m-%d %H:%M} UTC "
          f"({minutes:.1f} min).\n")
    for shape, report in reports.items():
        print(f"### {shape}: {report['model']}\n")
        print(format_report(report) + "\n")
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
