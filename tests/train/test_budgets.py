"""Budget samplers: parsing, support, distribution, and determinism from (seed, step)."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from mqt_vlm.errors import MQTError
from mqt_vlm.train.budgets import parse_budget_sampler


def _histogram(spec: str, steps: int = 20000, seed: int = 0) -> Counter:
    sampler = parse_budget_sampler(spec)
    return Counter(sampler.draw(seed, step)[0] for step in range(steps))


def test_fixed_is_always_m() -> None:
    assert set(_histogram("fixed:256", 200)) == {256}


def test_even_is_uniform_over_even_numbers() -> None:
    counts = _histogram("even:2-256")
    assert set(counts) == set(range(2, 257, 2))  # every even value appears, nothing else
    expected = 20000 / 128
    chi2 = sum((counts[m] - expected) ** 2 / expected for m in range(2, 257, 2))
    assert chi2 < 200  # 127 degrees of freedom: p ~ 1e-4 at 190


def test_uniform_support_and_mean() -> None:
    counts = _histogram("uniform:1-16")
    assert set(counts) == set(range(1, 17))
    mean = sum(m * c for m, c in counts.items()) / 20000
    assert abs(mean - 8.5) < 0.15


def test_log_uniform_favours_small_budgets_like_a_log_scale() -> None:
    counts = _histogram("log-uniform:1-256")
    assert min(counts) == 1 and max(counts) <= 256
    # P(m in [2^k, 2^(k+1))) = log 2 / log 257 for every octave
    for k in range(0, 8):
        share = sum(c for m, c in counts.items() if 2**k <= m < 2 ** (k + 1)) / 20000
        assert abs(share - math.log(2) / math.log(257)) < 0.02
    assert counts[1] > counts[200] * 50


def test_choices() -> None:
    counts = _histogram("choices:2,4,8,64", 4000)
    assert set(counts) == {2, 4, 8, 64}
    assert all(abs(c / 4000 - 0.25) < 0.04 for c in counts.values())


def test_same_budget_on_every_rank_and_after_resume() -> None:
    """Draws depend on (seed, step) only: separate sampler objects (ranks, a resumed process) agree."""
    first = parse_budget_sampler("even:2-256")
    rank0 = [first.draw(7, step) for step in range(50)]
    rank1 = [parse_budget_sampler("even:2-256").draw(7, step) for step in range(50)]
    resumed = [parse_budget_sampler("even:2-256").draw(7, step) for step in range(20, 50)]
    assert rank0 == rank1 and rank0[20:] == resumed
    assert rank0 != [first.draw(8, step) for step in range(50)]  # the seed matters


def test_several_budgets_per_step_are_distinct() -> None:
    sampler = parse_budget_sampler("even:2-16")
    for step in range(100):
        budgets = sampler.draw(0, step, 3)
        assert len(set(budgets)) == 3 and budgets == sorted(budgets, reverse=True)
        assert all(m % 2 == 0 and 2 <= m <= 16 for m in budgets)
    with pytest.raises(MQTError):
        sampler.draw(0, 0, 9)  # only 8 values exist


@pytest.mark.parametrize("spec", ["", "fixed", "fixed:x", "even:3-256", "uniform:10-2", "choices:", "normal:1-2", "uniform:0-4", "log-uniform:1"])
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(MQTError):
        parse_budget_sampler(spec)


def test_budget_above_num_queries_is_refused() -> None:
    with pytest.raises(MQTError, match="M=16"):
        parse_budget_sampler("even:2-256").check_against(16)
