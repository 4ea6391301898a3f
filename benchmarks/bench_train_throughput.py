"""Stage-2 training throughput of the reproduction: the Matryoshka sampler versus fixed budgets.

Reads the per-step records (`train_log.jsonl`) that every stage-2 run of `make reproduce` writes, so
the figures come from the very runs of the reproduction (same machine, same hour, same data and
steps; the runs go one after another). The first `--skip` steps (start-up, allocator warm-up) are
left out. A Matryoshka step costs what its drawn budget costs, so its mean sits between the fixed
runs; per-budget cost is shown by the fixed runs.

    python benchmarks/bench_train_throughput.py runs/reproduce [--skip 20] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path


def summarize(run_dir: Path, skip: int) -> dict[str, float]:
    steps = []
    for line in (run_dir / "train_log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "step" in record and "loss" in record and record["step"] > skip:
            steps.append(record)
    if not steps:
        raise SystemExit(f"{run_dir}: no step records after step {skip}")
    seconds = sum(r["time"] for r in steps)
    return {
        "steps": len(steps),
        "s_per_step": seconds / len(steps),
        "samples_per_s": sum(r["samples"] for r in steps) / seconds,
        "tokens_per_s": sum(r["tokens"] for r in steps) / seconds,
        "mean_tokens_per_step": statistics.mean(r["tokens"] for r in steps),
        "mean_m": statistics.mean(m for r in steps for m in r["m"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reproduce_dir", type=Path)
    parser.add_argument("--skip", type=int, default=20)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    runs = sorted(p for p in args.reproduce_dir.glob("stage2-*") if (p / "train_log.jsonl").is_file())
    if not runs:
        raise SystemExit(f"no stage2-* runs with train_log.jsonl in {args.reproduce_dir}")
    rows = {p.name.removeprefix("stage2-"): summarize(p, args.skip) for p in runs}
    order = sorted(rows, key=lambda n: (n != "mqt", int(n.split("-")[1]) if "-" in n else 0))
    reference = rows.get(f"fixed-{max(int(n.split('-')[1]) for n in rows if n.startswith('fixed-'))}") if any(
        n.startswith("fixed-") for n in rows) else None
    print(f"Machine: {platform.processor() or platform.machine()}, {platform.system()}; date {time.strftime('%Y-%m-%d')}; "
          f"source {args.reproduce_dir}")
    print("| run | mean m | s/step | samples/s | tokens/s | tokens/step | samples/s vs fixed M |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in order:
        r = rows[name]
        ratio = f"{r['samples_per_s'] / reference['samples_per_s']:.2f}x" if reference else "-"
        print(f"| {name} | {r['mean_m']:.1f} | {r['s_per_step']:.3f} | {r['samples_per_s']:.1f} | {r['tokens_per_s']:.0f} "
              f"| {r['mean_tokens_per_step']:.0f} | {ratio} |")
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
