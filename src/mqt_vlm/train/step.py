"""One optimizer step: expand the micro-batches at the step's budgets, normalise, forward, backward.

Loss normalisation is what makes the global batch mean the same thing for any process count: the
loss of budget k is the sum of token losses over the whole global batch (all ranks, all
accumulation slots) divided by the global number of target tokens at that budget. Each rank knows
its own counts, one all-gather gives the global ones, and the per-micro-batch loss is scaled by
world_size * accumulation_steps to undo the averaging that DDP/FSDP/DeepSpeed and
`accelerator.backward` apply. One process with 2 accumulation slots and two processes with 1 slot
therefore compute the same gradient (up to float summation order). With K > 1 budgets the step's
loss is the sum of the K per-budget losses.

The same all-gather carries each rank's budgets, so ranks that disagree on m (which would be a bug)
stop the run instead of training silently on different budgets.

Shapes: R rows (K budgets x B samples), L padded length, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from mqt_vlm.data.collate import MicroBatch, build_inputs, target_counts
from mqt_vlm.data.encode import IGNORE_INDEX
from mqt_vlm.errors import MQTError


@dataclass
class StepResult:
    loss_by_budget: list[float]  # global token-mean loss at each budget
    grad_norm: float | None
    tokens: int  # non-padding positions processed, all ranks (image positions included)
    target_tokens: int
    samples: int
    budgets_by_rank: list[list[int]]
    substituted: list[str]


def token_loss_sums(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed next-token cross-entropy per row over target positions: logits [R, L, V], labels [R, L] -> [R]."""
    vocab = logits.shape[-1]
    losses = F.cross_entropy(
        logits[:, :-1].reshape(-1, vocab).float(),  # [R * (L-1), V]
        labels[:, 1:].reshape(-1),  # [R * (L-1)]
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )
    return losses.view(labels.shape[0], -1).sum(dim=1)  # [R]


def forget_zero3_gradients(model: Any) -> None:
    """Give parameters that get no gradient in this step (the query transformer in a text-only step)
    a zero gradient under DeepSpeed ZeRO-3, as ZeRO-2 does, instead of their previous one.

    ZeRO-3 (DeepSpeed 0.19.8, runtime/zero/stage3.py) copies each reduced gradient into a persistent
    per-parameter slice of `grad_partitions_flat_buffer`, but only for parameters that produced one,
    and `independent_gradient_partition_epilogue` hands the optimizer every trainable parameter's slice:
    an unused parameter's slice still holds the last step's gradient, which is applied again. The
    buffer is not in checkpoints either, so a resume just before a text-only step would differ from
    the uninterrupted run. Clearing it before each step removes both effects.
    """
    buffer = getattr(getattr(model, "optimizer", None), "grad_partitions_flat_buffer", None)
    if isinstance(buffer, torch.Tensor):
        buffer.zero_()


def train_step(
    accelerator: Any,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    micro_batches: Sequence[MicroBatch],
    budgets: Sequence[int],
    max_length: int,
    image_token_id: int,
    pad_token_id: int,
    max_grad_norm: float,
) -> StepResult:
    """Run the accumulation slots of this rank for one optimizer step and update the weights."""
    device = accelerator.device
    num_budgets = len(budgets)
    inputs = [build_inputs(batch, budgets, max_length, image_token_id, pad_token_id) for batch in micro_batches]
    local_counts = torch.stack([target_counts(x, num_budgets) for x in inputs]).sum(dim=0)  # [K]
    local_tokens = sum(int(x["attention_mask"].sum()) for x in inputs)
    local_samples = sum(len(batch) for batch in micro_batches)
    header = torch.tensor([*local_counts.tolist(), *budgets, local_tokens, local_samples], device=device)
    gathered = accelerator.gather(header.unsqueeze(0))  # [W, 2K + 2]
    budgets_by_rank = gathered[:, num_budgets : 2 * num_budgets].tolist()
    if any(row != list(budgets) for row in budgets_by_rank):
        raise MQTError(f"Ranks disagree on the step's budgets {budgets_by_rank}; budgets must come from (seed, step).")
    global_counts = gathered[:, :num_budgets].sum(dim=0).clamp(min=1).float()  # [K]
    scale = accelerator.num_processes * accelerator.gradient_accumulation_steps
    loss_parts = torch.zeros(num_budgets, device=device)
    grad_norm: float | None = None
    forget_zero3_gradients(model)
    for x in inputs:
        with accelerator.accumulate(model):
            pixel_values = x["pixel_values"].to(device) if x["pixel_values"] is not None else None
            output = model(
                input_ids=x["input_ids"].to(device),
                attention_mask=x["attention_mask"].to(device),
                pixel_values=pixel_values,
                num_visual_tokens=x["num_visual_tokens"] or None,
                use_cache=False,
            )
            row_sums = token_loss_sums(output.logits, x["labels"].to(device))  # [R]
            per_budget = torch.zeros(num_budgets, device=device).index_add(0, x["row_budget"].to(device), row_sums)
            per_budget = per_budget / global_counts  # [K]
            accelerator.backward(per_budget.sum() * scale)
            loss_parts += per_budget.detach()
            if accelerator.sync_gradients:
                if max_grad_norm > 0:
                    norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)  # all of them: FSDP1 wants that
                    grad_norm = float(norm) if norm is not None else None
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
    if not accelerator.sync_gradients:
        raise MQTError("The step ended without an optimizer update; accumulation slots and gradient_accumulation_steps disagree.")
    loss_by_budget = accelerator.reduce(loss_parts, reduction="sum").tolist()
    return StepResult(
        loss_by_budget=loss_by_budget,
        grad_norm=grad_norm,
        tokens=int(gathered[:, -2].sum()),
        target_tokens=int(gathered[:, :num_budgets].sum()),
        samples=int(gathered[:, -1].sum()),
        budgets_by_rank=budgets_by_rank,
        substituted=[record_id for batch in micro_batches for record_id in batch.substituted],
    )
