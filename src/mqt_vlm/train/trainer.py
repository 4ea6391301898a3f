"""The training run on Accelerate: set up, loop over optimizer steps, checkpoint, export.

Launch it with `accelerate launch` (DDP, FSDP or DeepSpeed come from the accelerate config) or as a
plain process. Everything that must agree between ranks and between a run and its resumption is a
pure function of the config and the step number: the data order (`data.batching.BatchPlan`), the
budgets (`train.budgets`), and the initial random weights (seeded identically on every rank).
Model, optimizer, scheduler and RNG states come from the checkpoint, so a resumed run repeats the
uninterrupted run's losses and budgets step for step.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from mqt_vlm.data.batching import BatchPlan, RankBatchSampler
from mqt_vlm.data.check import validate_records
from mqt_vlm.data.collate import collate_samples
from mqt_vlm.data.encode import tokenizer_source
from mqt_vlm.data.llava import LlavaDataset, Record, approximate_length, read_records
from mqt_vlm.errors import MQTError
from mqt_vlm.train.budgets import parse_budget_sampler
from mqt_vlm.train.checkpoint import (
    TrainerState,
    check_same_layout,
    checkpoint_layout,
    list_checkpoints,
    load_newest_intact,
    save_checkpoint,
)
from mqt_vlm.train.config import TrainConfig
from mqt_vlm.train.export import export_model
from mqt_vlm.train.metrics import StepLogger
from mqt_vlm.train.model_init import prepare_model
from mqt_vlm.train.step import StepResult, train_step
from mqt_vlm.train.trainability import count_parameters

RESUME_MUST_MATCH = ("model", "budget", "trainable", "lora", "optim")


def resolve_precision(precision: str) -> str:
    """Accelerate's mixed_precision value: bf16 on GPUs that support it, fp32 ("no") on CPU."""
    if precision == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return "no" if precision == "fp32" else precision


def _process_state() -> Any:
    """Join the launcher's processes before the Accelerator exists, and return the shared state.

    On GPU-less machines the group must be gloo: Accelerator(cpu=True) would set that up for
    `--multi_gpu` launches but drop a DeepSpeed config, while Accelerator() alone leaves DeepSpeed on
    CPU believing it runs one process; creating the CPU process state first gives both (FSDP then
    needs `_select_fsdp_on_cpu`). Creating it early also lets the model be built before the
    Accelerator: every rank loads full weights and `prepare` shards them, so no DeepSpeed ZeRO-3
    partitioning hooks are active while weights are created or initialised.
    """
    from accelerate import PartialState

    if torch.cuda.is_available():
        return PartialState()
    return PartialState(cpu=True)


def _select_fsdp_on_cpu(accelerator: Any) -> None:
    """Run an FSDP launch config on GPU-less machines too (tests and CPU smoke runs), instead of DDP.

    torch's FSDP2 (`fully_shard`) runs on CPU over gloo, and Accelerate's FSDP code (prepare, DCP
    checkpoints, full-state-dict gathering) has nothing GPU-specific, but Accelerate 1.15 only
    switches to FSDP when the process state is an accelerator type (`AcceleratorState.__init__`
    tests `distributed_type in [MULTI_GPU, MULTI_NPU, ...]`, without MULTI_CPU): on CPU the FSDP
    config would silently train with DDP. So the FSDP type and the plugin (built, as Accelerate
    builds it, from the launcher's FSDP_* environment) are set on the shared states, the process
    state included, since every `AcceleratorState()` copies the process state's type again.
    """
    from accelerate import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin()
    if plugin.fsdp_version != 2:
        raise MQTError("On CPU the trainer runs FSDP2 only (fsdp_version: 2, as in configs/accelerate/cpu-fsdp.yaml).")
    PartialState().distributed_type = DistributedType.FSDP
    accelerator.state.distributed_type = DistributedType.FSDP
    accelerator.state.fsdp_plugin = plugin


def data_fingerprint(records: list[Record]) -> str:
    """Identifies the validated record list, so a resume on different data is refused."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(f"{record.index}\t{record.id}\t{record.image}\n".encode())
    return digest.hexdigest()[:16]


def _weights_digest(model: Any) -> str:
    """A digest of the trained weights. FSDP2 parameters are shards (DTensors): each rank digests the
    gathered full tensors (a collective, so every rank must call this), which shows whether the
    shards form one model that all ranks see alike."""
    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters()):
        if parameter.requires_grad:
            value = parameter.detach()
            if hasattr(value, "full_tensor"):
                value = value.full_tensor()
            digest.update(name.encode())
            digest.update(value.float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def _make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
    from transformers import get_scheduler

    warmup = math.ceil(config.optim.warmup_ratio * total_steps)
    name = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}[config.optim.scheduler]
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


def _make_optimizer(config: TrainConfig, model: Any) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and norms; the MQT may have its own learning rate."""
    mqt_lr = config.optim.mqt_learning_rate or config.optim.learning_rate
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            groups.setdefault((name.startswith("mqt."), parameter.ndim >= 2), []).append(parameter)
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "lr": mqt_lr if is_mqt else config.optim.learning_rate,
                "weight_decay": config.optim.weight_decay if decay else 0.0,
            }
            for (is_mqt, decay), params in sorted(groups.items())
        ],
        lr=config.optim.learning_rate,
        betas=(config.optim.adam_beta1, config.optim.adam_beta2),
        eps=config.optim.adam_epsilon,
    )


def _check_resume_config(output_dir: Path, config: TrainConfig) -> None:
    saved_path = output_dir / "config.json"
    if not saved_path.is_file():
        return
    try:
        saved = json.loads(saved_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MQTError(f"{saved_path} (the run's config, compared on --resume) is damaged: {exc}. Restore it, "
                       "or remove it to resume without the comparison.") from None
    if not isinstance(saved, dict):
        raise MQTError(f"{saved_path} (the run's config, compared on --resume) does not hold a JSON object.")
    current = config.to_dict()
    changed = [f"{section}.{key}" for section in RESUME_MUST_MATCH for key in current[section] if saved.get(section, {}).get(key) != current[section][key]]
    for key in ("seed", "max_steps"):
        if saved.get("runtime", {}).get(key) != current["runtime"][key]:
            changed.append(f"runtime.{key}")
    for key in ("path", "template", "max_length", "group_by_length", "group_by_modality"):
        if saved.get("data", {}).get(key) != current["data"][key]:
            changed.append(f"data.{key}")
    if changed:
        raise MQTError(f"--resume with a different config ({changed}) would not continue the same run; use a new output dir.")


def _batch_plan(config: TrainConfig, records: list[Record], max_budget: int) -> BatchPlan:
    return BatchPlan(
        lengths=tuple(approximate_length(r, max_budget) for r in records),
        has_image=tuple(r.image is not None for r in records),
        global_batch=config.optim.global_batch_size,
        micro_batch=config.optim.micro_batch_size,
        seed=config.runtime.seed,
        group_by_length=config.data.group_by_length,
        group_by_modality=config.data.group_by_modality,
    )


def _epoch_loader(config: TrainConfig, dataset: LlavaDataset, sampler: RankBatchSampler, epoch: int) -> DataLoader:
    """This rank's micro-batches of one epoch; images are decoded in the worker processes."""
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=config.data.num_workers,
        collate_fn=collate_samples,
        pin_memory=torch.cuda.is_available(),
        # seeding the workers from a private generator leaves the global RNG (and thus resume) alone
        generator=torch.Generator().manual_seed(config.runtime.seed * 100_003 + epoch),
    )


def _step_record(step: int, epoch: int, budgets: list[int], result: StepResult, lr: float, elapsed: float) -> dict[str, Any]:
    return {
        "step": step, "epoch": epoch, "loss": sum(result.loss_by_budget),
        "loss_by_m": {str(m): loss for m, loss in zip(budgets, result.loss_by_budget)},
        "m": list(budgets), "m_by_rank": result.budgets_by_rank, "lr": lr, "grad_norm": result.grad_norm,
        "tokens": result.tokens, "target_tokens": result.target_tokens, "samples": result.samples,
        "time": elapsed, "tokens_per_s": result.tokens / elapsed, "samples_per_s": result.samples / elapsed,
    }


def run_training(config: TrainConfig, output_dir: Path, resume: bool = False) -> Path:
    """Train one stage; returns the exported model directory (`output_dir/final`)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, DistributedType, gather_object, parse_flag_from_env, set_seed

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # tokenizers are used in forked workers
    config.validate()
    output_dir = Path(output_dir)
    assert config.data.path is not None
    records, problems = read_records(Path(config.data.path))
    has_text_only = any(record.image is None for record in records)
    mixed_precision = resolve_precision(config.runtime.precision)
    processes = _process_state()
    if resume:
        _check_resume_config(output_dir, config)  # on every rank, so all of them stop together
    elif list_checkpoints(output_dir):
        raise MQTError(f"{output_dir} already holds checkpoints; pass --resume to continue that run, or use a new output dir.")
    if config.model.tokenizer is not None:
        with processes.main_process_first():  # the first rank writes the offline tokenizer folder alone
            tokenizer_source(config.model.tokenizer)
    set_seed(config.runtime.seed)  # the same random initial weights on every rank
    model, processor, trainable = prepare_model(config, mixed_precision)
    accelerator = Accelerator(
        mixed_precision=mixed_precision,
        step_scheduler_with_optimizer=False,
        # text-only micro-batches leave the query transformer without gradients
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=has_text_only)],
    )
    if not torch.cuda.is_available() and parse_flag_from_env("ACCELERATE_USE_FSDP") and accelerator.num_processes > 1:
        _select_fsdp_on_cpu(accelerator)
    rank, world = accelerator.process_index, accelerator.num_processes
    sampler = parse_budget_sampler(config.budget.sampler)
    sampler.check_against(model.num_queries)

    image_folder = Path(config.data.image_folder) if config.data.image_folder else None
    report = validate_records(
        Path(config.data.path), records, problems, image_folder, processor, config.data.template,
        config.data.max_length, sampler.max_budget, verify_images=config.data.verify_images,
        allow_absolute_paths=config.data.allow_absolute_paths,
    )
    if not report.ok and not config.data.skip_bad_samples:
        raise MQTError(report.summary() + "\nInvalid records found; fix them or pass --skip-bad-samples.")
    valid = report.valid
    plan = _batch_plan(config, valid, sampler.max_budget)
    accumulation = plan.accumulation_steps(world)
    accelerator.gradient_accumulation_steps = accumulation
    total_steps = config.runtime.max_steps or plan.steps_per_epoch * config.optim.epochs
    dataset = LlavaDataset(valid, image_folder, processor, config.data.template, config.data.skip_bad_samples,
                           config.data.allow_absolute_paths)

    optimizer = _make_optimizer(config, model)
    scheduler = _make_scheduler(config, optimizer, total_steps)
    deepspeed = getattr(accelerator.state, "deepspeed_plugin", None)
    if deepspeed is not None:  # no prepared DataLoader tells DeepSpeed the batch layout, so we do
        deepspeed.deepspeed_config["train_micro_batch_size_per_gpu"] = config.optim.micro_batch_size
        deepspeed.deepspeed_config["gradient_accumulation_steps"] = accumulation
        deepspeed.deepspeed_config["gradient_clipping"] = config.optim.max_grad_norm
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    layout = checkpoint_layout(accelerator)
    state = TrainerState(data_fingerprint=data_fingerprint(valid), skipped_samples=len(report.problems), layout=layout, world_size=world)
    checkpoint, damaged = None, []

    def warn(text: str) -> None:
        if accelerator.is_main_process:
            print(f"warning: {text}", file=sys.stderr, flush=True)

    if resume:
        check_same_layout(output_dir, layout, world)
    resumed = load_newest_intact(accelerator, output_dir, warn) if resume else None
    if resumed is not None:
        fingerprint = state.data_fingerprint
        state, checkpoint, damaged = resumed
        state.layout, state.world_size = layout, world  # checkpoints from before these fields
        if damaged:
            warn(f"resuming from {checkpoint}, the newest intact checkpoint (damaged ones renamed damaged-step-*)")
        if state.data_fingerprint != fingerprint:
            raise MQTError(f"{checkpoint} was trained on different data (fingerprint {state.data_fingerprint} != {fingerprint}).")
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    accelerator.wait_for_everyone()

    logger = StepLogger(output_dir, accelerator.is_main_process, total_steps, state.step, config.runtime.tensorboard)
    logger.event(
        "resume" if checkpoint is not None else "start",
        stage=config.stage, step=state.step, total_steps=total_steps, world_size=world,
        accumulation_steps=accumulation, global_batch=config.optim.global_batch_size,
        steps_per_epoch=plan.steps_per_epoch, budget_sampler=sampler.spec, budgets_per_step=config.budget.per_step,
        mixed_precision=mixed_precision, distributed=str(accelerator.distributed_type),
        parameters=count_parameters(accelerator.unwrap_model(model)), trainable=trainable,
        checkpoint=str(checkpoint) if checkpoint else None, damaged_checkpoints=damaged,
    )
    logger.event("data", records=report.total, valid=len(valid), bad_samples=len(report.problems),
                 bad_ids=[p.id for p in report.problems[:50]], truncated=len(report.truncated))

    image_token_id = processor.image_token_id
    pad_token_id = processor.tokenizer.pad_token_id if processor.tokenizer.pad_token_id is not None else 0
    lora_scaling = config.lora.alpha / config.lora.r if config.trainable.language_model == "lora" else None
    while state.step < total_steps:
        epoch, start = divmod(state.step, plan.steps_per_epoch)
        stop = min(plan.steps_per_epoch, start + total_steps - state.step)
        loader = _epoch_loader(config, dataset, RankBatchSampler(plan, epoch, start, rank, world, stop), epoch)
        batches = iter(loader)
        for step_in_epoch in range(start, stop):
            began = time.perf_counter()
            micro_batches = [next(batches) for _ in range(accumulation)]
            budgets = sampler.draw(config.runtime.seed, state.step, config.budget.per_step)
            result = train_step(
                accelerator, model, optimizer, scheduler, micro_batches, budgets,
                config.data.max_length, image_token_id, pad_token_id, config.optim.max_grad_norm,
            )
            elapsed = time.perf_counter() - began
            state.step += 1
            state.epoch, state.step_in_epoch = divmod(state.step, plan.steps_per_epoch)
            state.samples_seen += result.samples
            state.tokens_seen += result.tokens
            state.skipped_samples += len(result.substituted)
            state.last_budgets = list(budgets)
            if result.substituted:
                logger.event("skipped", step=state.step, ids=result.substituted, total_skipped=state.skipped_samples)
            logger.step(_step_record(state.step, epoch, budgets, result, scheduler.get_last_lr()[0], elapsed))
            if state.step % config.runtime.save_every == 0 or state.step == total_steps:
                saved = save_checkpoint(accelerator, output_dir, state, config.runtime.keep_checkpoints)
                logger.event("checkpoint", step=state.step, path=str(saved))
        del batches, loader

    digests: list[str] = []
    if accelerator.distributed_type in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU) or accelerator.is_fsdp2:
        digests = gather_object([_weights_digest(accelerator.unwrap_model(model))])  # replicas must agree
    final = export_model(
        accelerator, model, processor, output_dir / "final",
        info={"stage": config.stage, "step": state.step, "config": config.to_dict()},
        lora_scaling=lora_scaling,
        dtype=torch.bfloat16 if mixed_precision == "bf16" else torch.float32,
    )
    logger.event("end", step=state.step, samples_seen=state.samples_seen, tokens_seen=state.tokens_seen,
                 skipped_samples=state.skipped_samples, weight_digests=digests, export=str(final))
    logger.close()
    accelerator.end_training()
    return final
