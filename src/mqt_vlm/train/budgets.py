"""Budget samplers: which visual-token budgets m an optimizer step trains on.

The paper draws one m per step: m = M in stage 1, m uniform over the even numbers 2..256 in stage 2.
A sampler is parsed from a short string so it fits a config file or a command line:

    fixed:256         always 256
    even:2-256        uniform over 2, 4, ..., 256 (the paper's stage 2)
    uniform:1-256     uniform over 1..256
    log-uniform:1-256 P(m) proportional to log((m + 1) / m): small budgets as often as large scales
    choices:2,4,8,16  uniform over the listed values

Draws are a pure function of (seed, step): `random.Random` seeded with a string (hashed with
SHA-512 by Python, so no PYTHONHASHSEED dependence) gives every rank the same m at the same step,
and a resumed run the same sequence as an uninterrupted one. With K budgets per step the K values
are distinct, drawn without replacement with the sampler's weights.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from mqt_vlm.errors import MQTError

KINDS = ("fixed", "even", "uniform", "log-uniform", "choices")


@dataclass(frozen=True)
class BudgetSampler:
    """A distribution over budgets: `support` values with `weights` (normalised on use)."""

    spec: str
    support: tuple[int, ...]
    weights: tuple[float, ...]

    @property
    def max_budget(self) -> int:
        return max(self.support)

    def probabilities(self) -> dict[int, float]:
        total = sum(self.weights)
        return {m: w / total for m, w in zip(self.support, self.weights)}

    def draw(self, seed: int, step: int, count: int = 1) -> list[int]:
        """`count` distinct budgets for optimizer step `step` (0-based), sorted descending."""
        if count < 1:
            raise MQTError(f"budgets_per_step must be >= 1, got {count}.")
        if count > len(self.support):
            raise MQTError(f"Cannot draw {count} distinct budgets from {self.spec!r} ({len(self.support)} values).")
        rng = random.Random(f"mqt-budget:{seed}:{step}")
        support, weights = list(self.support), list(self.weights)
        chosen: list[int] = []
        for _ in range(count):
            pick = rng.choices(range(len(support)), weights=weights)[0]
            chosen.append(support.pop(pick))
            weights.pop(pick)
        return sorted(chosen, reverse=True)

    def check_against(self, num_queries: int) -> None:
        """Refuse budgets the model cannot produce (m > M)."""
        if self.max_budget > num_queries:
            raise MQTError(
                f"Budget sampler {self.spec!r} reaches m={self.max_budget} but the model has only "
                f"M={num_queries} queries; use e.g. 'fixed:{num_queries}' or 'even:2-{num_queries}'."
            )


def _range(body: str, spec: str) -> tuple[int, int]:
    try:
        low_text, high_text = body.split("-")
        low, high = int(low_text), int(high_text)
    except ValueError as exc:
        raise MQTError(f"Budget sampler {spec!r}: expected a range LOW-HIGH such as 2-256.") from exc
    if not 1 <= low <= high:
        raise MQTError(f"Budget sampler {spec!r}: need 1 <= LOW <= HIGH.")
    return low, high


def parse_budget_sampler(spec: str) -> BudgetSampler:
    """Parse `kind:args` (see the module docstring); errors say what a valid spec looks like."""
    kind, sep, body = spec.strip().partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in KINDS:
        raise MQTError(f"Unknown budget sampler {spec!r}; use one of {[k + ':...' for k in KINDS]}, e.g. 'even:2-256'.")
    body = body.strip()
    if kind == "fixed":
        try:
            m = int(body)
        except ValueError as exc:
            raise MQTError(f"Budget sampler {spec!r}: expected fixed:M with an integer M.") from exc
        if m < 1:
            raise MQTError(f"Budget sampler {spec!r}: M must be >= 1.")
        return BudgetSampler(spec, (m,), (1.0,))
    if kind == "choices":
        try:
            values = sorted({int(v) for v in body.split(",") if v.strip()})
        except ValueError as exc:
            raise MQTError(f"Budget sampler {spec!r}: expected choices:2,4,8 (integers).") from exc
        if not values or values[0] < 1:
            raise MQTError(f"Budget sampler {spec!r}: give at least one budget, all >= 1.")
        return BudgetSampler(spec, tuple(values), (1.0,) * len(values))
    low, high = _range(body, spec)
    if kind == "even":
        if low % 2 or high % 2:
            raise MQTError(f"Budget sampler {spec!r}: both ends must be even (the paper uses even:2-256).")
        values = tuple(range(low, high + 1, 2))
        return BudgetSampler(spec, values, (1.0,) * len(values))
    values = tuple(range(low, high + 1))
    if kind == "uniform":
        return BudgetSampler(spec, values, (1.0,) * len(values))
    # log-uniform: m = floor(exp(u)), u ~ U[log low, log(high + 1)) -> P(m) ~ log((m + 1) / m)
    return BudgetSampler(spec, values, tuple(math.log((m + 1) / m) for m in values))
