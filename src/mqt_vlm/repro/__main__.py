"""`python -m mqt_vlm.repro`: the CPU reproduction (what `make reproduce` runs)."""

from __future__ import annotations

from pathlib import Path

import typer


def main(
    out: Path = typer.Option(Path("runs/reproduce"), help="Working folder; finished steps are reused."),
    base: str = typer.Option("builtin:shapes-base", help="The stage-0 model to start from (make pretrain-lm), a folder or builtin:NAME."),
    seed: int = typer.Option(0, help="Seed of the data and every run."),
    stage1_steps: int = typer.Option(1500, help="Optimizer steps of stage 1 (shared by all runs)."),
    stage2_steps: int = typer.Option(700, help="Optimizer steps of each stage-2 run."),
    install_builtin: bool = typer.Option(False, help="Copy the trained MQT model into the package as builtin:shapes."),
    quick: bool = typer.Option(False, help="A few steps of everything (a smoke run, not a result)."),
) -> None:
    """Train one Matryoshka model and one model per fixed budget on synthetic scenes, then compare them."""
    from mqt_vlm.repro.recipe import ReproConfig, reproduce

    config = ReproConfig(seed=seed, base=base, stage1_steps=stage1_steps, stage2_steps=stage2_steps)
    if quick:
        config = ReproConfig(seed=seed, base=base, n_images=300, stage1_steps=10, stage2_steps=10,
                             fixed_budgets=(2, 8), eval_budgets=(1, 2, 8, 32), eval_limit=10, describe_limit=8)
    reproduce(out, config, install=install_builtin)


if __name__ == "__main__":
    typer.run(main)
