"""`python -m mqt_vlm.repro`: the CPU reproduction (what `make reproduce` runs)."""

from __future__ import annotations

from pathlib import Path

import typer


def main(
    out: Path = typer.Option(Path("runs/reproduce"), help="Working folder; finished steps are reused."),
    seed: int = typer.Option(0, help="Seed of the data, the tower and every run."),
    stage2_steps: int = typer.Option(1200, help="Optimizer steps of each stage-2 run."),
    install_builtin: bool = typer.Option(False, help="Copy the trained MQT model into the package as builtin:shapes."),
    quick: bool = typer.Option(False, help="A few steps of everything (a smoke run, not a result)."),
) -> None:
    """Train one Matryoshka model and one model per fixed budget on synthetic scenes, then compare them."""
    from mqt_vlm.repro.recipe import ReproConfig, reproduce

    config = ReproConfig(seed=seed, stage2_steps=stage2_steps)
    if quick:
        config = ReproConfig(seed=seed, n_images=300, stage0_steps=10, stage1_steps=10, stage2_steps=10,
                             fixed_budgets=(2, 8), eval_budgets=(2, 8), eval_limit=40)
    reproduce(out, config, install=install_builtin)


if __name__ == "__main__":
    typer.run(main)
