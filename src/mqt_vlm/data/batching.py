"""The data order: which records form each optimizer step, and which rank trains on which part.

Why not a DistributedSampler: resume and process-count independence need the order to be a pure
function of (seed, epoch, step). Each epoch is a list of steps of `global_batch` records. A step is
cut into `global_batch / micro_batch` micro-batches; micro-batch j goes to rank j % world_size as
accumulation slot j // world_size. So the set of micro-batches of a step does not depend on the
number of processes (one process with 2 accumulation slots sees what two processes see), and a
resumed run restarts at a step by index, without reading the skipped data.

Grouping (the paper's stage 2, LLaVA's `group_by_modality_length`): image and text-only records are
shuffled separately and cut into whole steps, the steps are shuffled, and the mixed leftovers form
the epoch's last step; within a step, records are sorted by length before cutting micro-batches, so
padding stays small. The last step of an epoch is filled up by wrapping around the epoch's order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from torch.utils.data import Sampler

from mqt_vlm.errors import MQTError


@dataclass(frozen=True)
class BatchPlan:
    """Deterministic step layout for `len(lengths)` records."""

    lengths: tuple[int, ...]
    has_image: tuple[bool, ...]
    global_batch: int
    micro_batch: int
    seed: int
    group_by_length: bool = True
    group_by_modality: bool = True

    def __post_init__(self) -> None:
        if len(self.lengths) != len(self.has_image) or not self.lengths:
            raise MQTError("BatchPlan needs one length and one modality flag per record (and at least one record).")
        if self.micro_batch < 1 or self.global_batch % self.micro_batch:
            raise MQTError(f"global_batch={self.global_batch} must be a multiple of micro_batch={self.micro_batch}.")

    @property
    def num_records(self) -> int:
        return len(self.lengths)

    @property
    def micro_batches_per_step(self) -> int:
        return self.global_batch // self.micro_batch

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.num_records // self.global_batch)  # ceil

    def accumulation_steps(self, world_size: int) -> int:
        """Micro-batches per rank per step; the global batch is fixed, whatever the process count."""
        if self.micro_batches_per_step % world_size:
            raise MQTError(
                f"global_batch={self.global_batch} / micro_batch={self.micro_batch} = "
                f"{self.micro_batches_per_step} micro-batches per step cannot be split over {world_size} "
                "processes; change micro_batch_size so that global_batch_size is a multiple of "
                "micro_batch_size * num_processes."
            )
        return self.micro_batches_per_step // world_size

    def epoch_steps(self, epoch: int) -> list[list[int]]:
        """All steps of an epoch, each a list of `global_batch` record indices in micro-batch order."""
        return _epoch_steps(self, epoch)

    def split_step(self, step: Sequence[int], rank: int, world_size: int) -> list[list[int]]:
        """The accumulation slots of `rank` within one step: a list of micro-batches of record indices."""
        self.accumulation_steps(world_size)  # validates the split
        size = self.micro_batch
        chunks = [list(step[j * size : (j + 1) * size]) for j in range(self.micro_batches_per_step)]
        return [chunks[j] for j in range(rank, len(chunks), world_size)]


def _blocks(indices: list[int], size: int) -> tuple[list[list[int]], list[int]]:
    full = len(indices) // size * size
    return [indices[i : i + size] for i in range(0, full, size)], indices[full:]


def _epoch_steps(plan: BatchPlan, epoch: int) -> list[list[int]]:
    rng = random.Random(f"mqt-data:{plan.seed}:{epoch}")
    size = plan.global_batch
    everything = list(range(plan.num_records))
    rng.shuffle(everything)
    image = [i for i in everything if plan.has_image[i]]
    text = [i for i in everything if not plan.has_image[i]]
    if plan.group_by_modality and image and text:
        image_blocks, image_rest = _blocks(image, size)
        text_blocks, text_rest = _blocks(text, size)
        steps = image_blocks + text_blocks
        rng.shuffle(steps)
        tail_blocks, tail = _blocks(image_rest + text_rest, size)
        steps += tail_blocks
    else:
        steps, tail = _blocks(everything, size)
    if tail:  # fill the last step by wrapping around the epoch's order
        filler = (everything * (size // len(everything) + 1))[: size - len(tail)]
        steps.append(tail + filler)
    if plan.group_by_length:
        steps = [sorted(step, key=lambda i: (-plan.lengths[i], i)) for step in steps]
    return steps


class RankBatchSampler(Sampler[list[int]]):
    """Yields this rank's micro-batches from `start_step` to the end of one epoch (DataLoader batch_sampler)."""

    def __init__(self, plan: BatchPlan, epoch: int, start_step: int, rank: int, world_size: int, stop_step: int | None = None) -> None:
        self.plan = plan
        self.epoch = epoch
        self.start_step = start_step
        self.stop_step = plan.steps_per_epoch if stop_step is None else min(stop_step, plan.steps_per_epoch)
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[list[int]]:
        steps = self.plan.epoch_steps(self.epoch)
        for step in range(self.start_step, self.stop_step):
            yield from self.plan.split_step(steps[step], self.rank, self.world_size)

    def __len__(self) -> int:
        return max(0, self.stop_step - self.start_step) * self.plan.accumulation_steps(self.world_size)

