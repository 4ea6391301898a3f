"""lmms-eval task YAMLs for the synthetic benchmark; pass this folder to lmms-eval's --include_path.

    mqt data synth synthetic --parquet                      # writes synthetic/test.parquet
    lmms-eval --model mqt_vlm --tasks mqt_synthetic,mqt_synthetic_mc \\
              --include_path "$(python -m mqt_vlm.eval.lmms_tasks)" ...

The YAMLs read `synthetic/test.parquet` relative to the directory lmms-eval runs in (the layout
`mqt eval --data-root .` reads too). Tasks, one per question type so that lmms-eval's `--limit N`
(per task) keeps the same questions as `mqt eval --limit N` (per question type):

- group `mqt_synthetic` (generation, scored like `mqt eval --benchmarks synthetic`): subtasks
  `mqt_synthetic_{global,count,cell,relation}` (metric `accuracy`, exact match after the same
  normalisation) and `mqt_synthetic_describe` (metric `describe_cell`, per cell);
- group `mqt_synthetic_mc` (multiple choice, loglikelihood): subtasks
  `mqt_synthetic_mc_{global,count,cell,relation}`, metric `acc` over the question type's closed
  answer set (the parquet's `choices`).

The functions the YAMLs name live in `mqt_vlm.eval.lmms_tasks.synthetic`.
"""

from __future__ import annotations

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent
