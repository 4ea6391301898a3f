"""Micro-batches: gathered in DataLoader workers, turned into model inputs once the budgets are known.

`collate_samples` runs in the workers and keeps samples budget-free (one image placeholder each).
`build_inputs` runs in the training loop after the step's budgets are drawn: it expands every sample
at every budget of the step (K >= 1), so one forward pass computes the K losses, and it records which
rows belong to which budget so the loss can be normalised per budget.

Shapes: R = rows = K * B samples, L = padded length (<= max_length), I = images = K * images in B.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from mqt_vlm.data.encode import IGNORE_INDEX, EncodedSample, expand
from mqt_vlm.errors import MQTError


@dataclass
class MicroBatch:
    """Budget-free samples of one micro-batch; images in sample order (text-only samples have none)."""

    indices: list[int]
    ids: list[str]
    samples: list[EncodedSample]
    pixel_values: torch.Tensor | None  # [images, 3, H, W]
    substituted: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)


def collate_samples(items: Sequence[dict[str, Any]]) -> MicroBatch:
    """DataLoader collate_fn: stack the images, keep the token lists as they are."""
    pixels = [item["pixel_values"] for item in items if item["pixel_values"] is not None]
    return MicroBatch(
        indices=[item["index"] for item in items],
        ids=[item["id"] for item in items],
        samples=[item["sample"] for item in items],
        pixel_values=torch.stack(pixels) if pixels else None,
        substituted=[record_id for item in items for record_id in item["substituted"]],
    )


def build_inputs(
    batch: MicroBatch,
    budgets: Sequence[int],
    max_length: int,
    image_token_id: int,
    pad_token_id: int,
) -> dict[str, Any]:
    """Model inputs for every (budget, sample) pair, rows ordered budget-major.

    Returns input_ids / attention_mask / labels [R, L], pixel_values [I, 3, H, W] (the micro-batch's
    images repeated once per budget, in row order, as the model's masked_scatter expects),
    num_visual_tokens (one int per image) and row_budget [R] (index k of each row's budget).
    """
    if not budgets:
        raise MQTError("build_inputs needs at least one budget.")
    rows: list[tuple[list[int], list[int]]] = []
    row_budget: list[int] = []
    image_budgets: list[int] = []
    for k, m in enumerate(budgets):
        for sample in batch.samples:
            rows.append(expand(sample, m, max_length, image_token_id))
            row_budget.append(k)
            if sample.image_position is not None:
                image_budgets.append(m)
    length = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), length), pad_token_id, dtype=torch.long)  # [R, L]
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)  # [R, L]
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)  # [R, L]
    for r, (ids, labs) in enumerate(rows):  # right padding, as LLaVA trains
        input_ids[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        labels[r, : len(labs)] = torch.tensor(labs, dtype=torch.long)
        attention_mask[r, : len(ids)] = 1
    inputs: dict[str, Any] = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "row_budget": torch.tensor(row_budget, dtype=torch.long),  # [R]
        "num_visual_tokens": image_budgets,
        "pixel_values": None,
    }
    if batch.pixel_values is not None:
        inputs["pixel_values"] = batch.pixel_values.repeat(len(budgets), 1, 1, 1)  # [I, 3, H, W]
    return inputs


def target_counts(inputs: dict[str, Any], num_budgets: int) -> torch.Tensor:
    """Number of (shifted) target tokens per budget, [K]: the loss denominators."""
    targets = (inputs["labels"][:, 1:] != IGNORE_INDEX).sum(dim=1)  # [R]
    counts = torch.zeros(num_budgets, dtype=torch.long)
    counts.index_add_(0, inputs["row_budget"], targets)
    return counts
