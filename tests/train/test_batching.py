"""The data order: complete epochs, the same micro-batches for any process count, exact resume."""

from __future__ import annotations

import pytest

from mqt_vlm.data.batching import BatchPlan, RankBatchSampler
from mqt_vlm.errors import MQTError


def _plan(n: int = 50, global_batch: int = 8, micro_batch: int = 2, **kwargs) -> BatchPlan:
    return BatchPlan(
        lengths=tuple((i * 37) % 23 + 1 for i in range(n)),
        has_image=tuple(i % 3 != 0 for i in range(n)),
        global_batch=global_batch,
        micro_batch=micro_batch,
        seed=1,
        **kwargs,
    )


def test_every_record_once_per_epoch_and_last_step_filled() -> None:
    plan = _plan()
    steps = plan.epoch_steps(0)
    assert len(steps) == plan.steps_per_epoch == 7
    assert all(len(step) == 8 for step in steps)
    flat = [i for step in steps for i in step]
    assert set(flat) == set(range(50)) and len(flat) == 56  # 6 wrapped-around fillers
    assert plan.epoch_steps(0) == steps and plan.epoch_steps(1) != steps  # fixed per epoch, reshuffled between


def test_modality_grouping_keeps_full_steps_single_modality() -> None:
    plan = _plan(n=60, global_batch=8)
    steps = plan.epoch_steps(0)
    mixed = [step for step in steps if len({plan.has_image[i] for i in step}) > 1]
    assert len(mixed) <= 2  # only the leftover tail mixes image and text-only records
    for step in steps:  # sorted by length inside a step, so micro-batches pad little
        assert [plan.lengths[i] for i in step] == sorted((plan.lengths[i] for i in step), reverse=True)


def test_micro_batches_do_not_depend_on_the_process_count() -> None:
    plan = _plan()
    for step in plan.epoch_steps(0):
        one = plan.split_step(step, 0, 1)
        two = [plan.split_step(step, r, 2) for r in range(2)]
        four = [plan.split_step(step, r, 4) for r in range(4)]
        assert sorted(map(tuple, one)) == sorted(tuple(b) for rank in two for b in rank) == sorted(tuple(b) for rank in four for b in rank)
        assert [len(rank) for rank in two] == [2, 2] and [len(rank) for rank in four] == [1, 1, 1, 1]


def test_world_size_must_divide_the_micro_batches() -> None:
    with pytest.raises(MQTError, match="cannot be split"):
        _plan(global_batch=8, micro_batch=2).accumulation_steps(3)
    with pytest.raises(MQTError):
        _plan(global_batch=8, micro_batch=3)


def test_rank_sampler_resumes_at_a_step() -> None:
    plan = _plan()
    full = list(RankBatchSampler(plan, 0, 0, 1, 2))
    resumed = list(RankBatchSampler(plan, 0, 3, 1, 2))
    assert resumed == full[3 * 2 :]
    assert len(RankBatchSampler(plan, 0, 3, 1, 2, stop_step=5)) == 4
