"""Benchmark loaders, one module per family, and the name -> `Benchmark` registry `mqt eval` uses.

Every loader reads the layout LLaVA-1.5's evaluation scripts use under `playground/data/eval`
(docs/evaluation.md lists each one and where its files come from) and every scorer is a pure function
of (items, predictions) built on `mqt_vlm.eval.scorers`.
"""

from __future__ import annotations

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.benchmarks import choice, mmmu, open_ended, short_answer, synthetic, yesno
from mqt_vlm.eval.benchmarks.base import Benchmark, EmbeddedImage, EvalItem

__all__ = ["ALIASES", "BENCHMARKS", "Benchmark", "EmbeddedImage", "EvalItem", "get_benchmark", "parse_benchmarks"]

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for module in (short_answer, yesno, choice, mmmu, open_ended, synthetic)
    for b in module.BENCHMARKS
}
ALIASES = {
    "sqa": "scienceqa", "sqa_img": "scienceqa", "scienceqa_img": "scienceqa", "vqa": "vqav2",
    "mmbench-cn": "mmbench_cn", "mmbench_en": "mmbench", "seed_bench": "seed", "seed-bench": "seed",
    "seedbench": "seed", "llava_bench": "llavabench", "llava-bench": "llavabench", "llava_w": "llavabench",
    "llava-bench-in-the-wild": "llavabench", "mm-vet": "mmvet", "mm_vet": "mmvet", "mmmu_val": "mmmu",
}


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called `name` (case-insensitive, common spellings accepted)."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in BENCHMARKS:
        raise MQTError(f"Unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}.")
    return BENCHMARKS[key]


def parse_benchmarks(text: str) -> list[Benchmark]:
    """`--benchmarks pope,mme,gqa` -> benchmarks in the given order, duplicates dropped."""
    names = [part for part in text.split(",") if part.strip()]
    if not names:
        raise MQTError(f"No benchmark given; choose from {', '.join(BENCHMARKS)}.")
    chosen: dict[str, Benchmark] = {}
    for name in names:
        benchmark = get_benchmark(name)
        chosen.setdefault(benchmark.name, benchmark)
    return list(chosen.values())
