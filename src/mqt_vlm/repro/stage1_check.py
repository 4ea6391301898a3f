"""Can stage 1 align with the LM frozen, as the paper does? `python -m mqt_vlm.repro.stage1_check`.

The paper's stage 1 trains only the query transformer and keeps Vicuna frozen. This runs stage 1
twice from the same base, data, seed and steps, once with the LM frozen and once with it trained,
and reports each run's caption loss (mean of the last 50 steps) and the per-cell accuracy of the
teacher-forced description at m = M on test images. The reproduction uses the better of the two
and docs/reproduction.md gives these numbers.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import typer

from mqt_vlm.repro.steps import log, run_stage


def last_losses(run_dir: Path, count: int = 50) -> float:
    losses = [json.loads(line)["loss"] for line in (run_dir / "train_log.jsonl").read_text().splitlines()
              if '"loss"' in line and '"step"' in line]
    return statistics.mean(losses[-count:])


def main(
    out: Path = typer.Option(Path("runs/stage1-check"), help="Working folder."),
    data: Path = typer.Option(Path("runs/reproduce/data"), help="The reproduction's data folder (written by make reproduce)."),
    base: str = typer.Option("builtin:shapes-base", help="The stage-0 model."),
    steps: int = typer.Option(1500, help="Stage-1 steps of each run (the reproduction's stage 1 has 1500)."),
    images: int = typer.Option(100, help="Test images for the teacher-forced description."),
    seed: int = typer.Option(0, help="Seed of both runs."),
    modes: str = typer.Option("frozen,full", help="Which runs: frozen, full (the reproduction's own stage 1 is the 'full' run)."),
) -> None:
    """Stage 1 with the LM frozen (the paper) versus trained, same everything else."""
    from mqt_vlm.loading import load_model
    from mqt_vlm.repro.recipe import resolve_base
    from mqt_vlm.repro.report import describe_teacher_forced

    folder = resolve_base(base)
    results = {}
    for language_model in [m.strip() for m in modes.split(",") if m.strip()]:
        run = out / f"lm-{language_model}"
        final = run_stage("stage1.yaml", run, {
            "model.pretrained": str(folder), "data.path": str(data / "describe_chat_train.json"),
            "data.image_folder": str(data), "runtime.max_steps": steps, "runtime.seed": seed,
            "trainable.language_model": language_model}, out / f"lm-{language_model}.log")
        model, processor = load_model(final)
        m = model.num_queries
        accuracy = describe_teacher_forced(model, processor, data, (m,), images)[m]
        results[language_model] = {"caption_loss_last50": last_losses(run), "describe_cell_tf_at_M": accuracy}
        log(f"LM {language_model}: {results[language_model]}")
    (out / "stage1_check.json").write_text(json.dumps({"steps": steps, "images": images, "results": results}, indent=2))


if __name__ == "__main__":
    typer.run(main)
