"""`mqt train`: a plain typed function; its docstring is the command's help."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from mqt_vlm.train.config import load_config


def train(
    config: Path,
    output_dir: Path,
    data: Optional[Path] = None,
    image_folder: Optional[Path] = None,
    init_from: Optional[str] = None,
    mqt_weights: Optional[Path] = None,
    budget: Optional[str] = None,
    budgets_per_step: Optional[int] = None,
    global_batch_size: Optional[int] = None,
    micro_batch_size: Optional[int] = None,
    learning_rate: Optional[float] = None,
    epochs: Optional[int] = None,
    max_steps: Optional[int] = None,
    max_length: Optional[int] = None,
    seed: Optional[int] = None,
    save_every: Optional[int] = None,
    keep_checkpoints: Optional[int] = None,
    num_workers: Optional[int] = None,
    precision: Optional[str] = None,
    resume: bool = False,
    skip_bad_samples: bool = False,
    allow_absolute_paths: bool = False,
    tensorboard: bool = False,
) -> None:
    """Train one stage of an elastic VLM from a stage config (YAML/JSON; presets in configs/).

    Run under `accelerate launch` for several processes (DDP, FSDP or DeepSpeed per the accelerate
    config); the global batch stays what the config says for any process count. Options override
    the config: --data/--image-folder (a LLaVA .json/.jsonl file and its images; image paths must stay
    inside the folder, absolute ones need --allow-absolute-paths), --init-from (an mqt_vlm directory
    to start from, e.g. the stage-1 OUTPUT_DIR/final, or builtin:NAME), --mqt-weights (a released
    query_abstractor.bin), --budget (fixed:256, even:2-256, uniform:1-256, log-uniform:1-256,
    choices:2,4,8), --budgets-per-step K (loss summed over K budgets each step). The data is checked
    first; invalid records stop the run unless --skip-bad-samples (skipped ids are logged).
    Checkpoints go to OUTPUT_DIR/checkpoints every --save-every steps and at the end; --resume
    continues from the newest intact one exactly (damaged ones are named and set aside). The trained
    model is exported to OUTPUT_DIR/final.
    """
    from mqt_vlm.train.trainer import run_training

    settings = load_config(config)
    overrides = {
        "data.path": str(data) if data else None,
        "data.image_folder": str(image_folder) if image_folder else None,
        "model.mqt_weights": str(mqt_weights) if mqt_weights else None,
        "budget.sampler": budget,
        "budget.per_step": budgets_per_step,
        "optim.global_batch_size": global_batch_size,
        "optim.micro_batch_size": micro_batch_size,
        "optim.learning_rate": learning_rate,
        "optim.epochs": epochs,
        "runtime.max_steps": max_steps,
        "data.max_length": max_length,
        "runtime.seed": seed,
        "runtime.save_every": save_every,
        "runtime.keep_checkpoints": keep_checkpoints,
        "data.num_workers": num_workers,
        "runtime.precision": precision,
        "data.skip_bad_samples": True if skip_bad_samples else None,
        "data.allow_absolute_paths": True if allow_absolute_paths else None,
        "runtime.tensorboard": True if tensorboard else None,
    }
    if init_from is not None:  # start from a trained model instead of the config's own source
        settings.model.preset = settings.model.vision = settings.model.language_model = None
        overrides["model.pretrained"] = str(init_from)
    run_training(settings.with_overrides(overrides), Path(output_dir), resume=resume)
    _finish()


def _finish() -> None:
    """Leave the process group cleanly: gloo workers can abort at interpreter exit otherwise."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
