"""`visual_tokens: "auto"`: answer cheaply first, spend more visual tokens only when unsure.

MQT makes this cheap to try: an image is encoded once at M (the encode-once cache), and each
escalation only re-runs the LM prefill with a longer prefix of the same visual tokens. The policy
is an interface (`BudgetPolicy`) so deployments can plug in their own rule; the default,
`ConfidenceEscalation`, walks a schedule such as 16 -> 64 -> 256 and stops at the first answer whose
confidence reaches a threshold. Confidence is either the geometric-mean token probability of the
answer (exp of the mean log-probability) or the probability of its first token; both are computed
under the model's own distribution, before any sampling warper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from mqt_vlm.errors import MQTError
from mqt_vlm.inference.batch import generate_batch
from mqt_vlm.inference.cache import VisualTokenCache
from mqt_vlm.inference.params import GenerationRequest, GenerationResult

Metric = Literal["mean_prob", "first_token_prob"]


@dataclass(frozen=True)
class AutoBudgetConfig:
    """Thresholds of the default policy. Budgets above the model's M are clipped to M."""

    budgets: tuple[int, ...] = (16, 64, 256)
    threshold: float = 0.5
    metric: Metric = "mean_prob"

    def __post_init__(self) -> None:
        budgets = tuple(self.budgets)
        if not budgets:
            raise MQTError("AutoBudgetConfig.budgets needs at least one budget.")
        for b in budgets:
            if isinstance(b, bool) or not isinstance(b, int) or b < 1:
                raise MQTError(f"Auto budgets must be ints >= 1, got {b!r}.")
        if list(budgets) != sorted(set(budgets)):
            raise MQTError(f"Auto budgets must be strictly increasing, got {list(budgets)}.")
        object.__setattr__(self, "budgets", budgets)
        if not isinstance(self.threshold, (int, float)) or not 0.0 <= self.threshold <= 1.0:
            raise MQTError(f"Auto threshold is a probability in [0, 1], got {self.threshold!r}.")
        if self.metric not in ("mean_prob", "first_token_prob"):
            raise MQTError(f"Auto metric must be 'mean_prob' or 'first_token_prob', got {self.metric!r}.")

    def schedule(self, num_queries: int) -> list[int]:
        """The budgets tried for a model with M = num_queries, in order."""
        return sorted({min(b, num_queries) for b in self.budgets})

    @classmethod
    def parse(cls, budgets: str, threshold: float, metric: str = "mean_prob") -> AutoBudgetConfig:
        """From CLI strings such as "16,64,256"."""
        try:
            values = tuple(int(x) for x in budgets.split(",") if x.strip())
        except ValueError as exc:
            raise MQTError(f"Auto budgets must be comma-separated ints, got {budgets!r}.") from exc
        return cls(values, threshold, metric)  # type: ignore[arg-type]


class BudgetPolicy(Protocol):
    """Chooses budgets for one request: a first budget, then either a larger one or None (accept)."""

    def first_budget(self, num_queries: int) -> int: ...

    def next_budget(self, attempts: Sequence[GenerationResult], num_queries: int) -> int | None: ...


def confidence(result: GenerationResult, metric: Metric) -> float:
    """A probability in [0, 1] saying how sure the model was of this answer."""
    if not result.logprobs:
        return 0.0
    if metric == "first_token_prob":
        return result.first_token_prob
    return math.exp(result.mean_logprob)


class ConfidenceEscalation:
    """Escalate along `config.schedule(M)` while the last answer's confidence < threshold."""

    def __init__(self, config: AutoBudgetConfig | None = None) -> None:
        self.config = config or AutoBudgetConfig()

    def first_budget(self, num_queries: int) -> int:
        return self.config.schedule(num_queries)[0]

    def next_budget(self, attempts: Sequence[GenerationResult], num_queries: int) -> int | None:
        if not attempts:
            return self.first_budget(num_queries)
        last = attempts[-1]
        if confidence(last, self.config.metric) >= self.config.threshold:
            return None
        larger = [b for b in self.config.schedule(num_queries) if b > last.num_visual_tokens]
        return larger[0] if larger else None


def finalize(attempts: Sequence[GenerationResult]) -> GenerationResult:
    """The accepted (last) attempt, reporting every budget tried."""
    return replace(attempts[-1], budgets_tried=tuple(a.num_visual_tokens for a in attempts))


def generate_auto(
    model: Any,
    processor: Any,
    request: GenerationRequest,
    policy: BudgetPolicy | None = None,
    cache: VisualTokenCache | None = None,
) -> GenerationResult:
    """Answer `request` at budgets chosen by `policy` (its own `num_visual_tokens` is ignored).

    Without a shared cache a private one is used, so the image is still encoded only once.
    """
    policy = policy or ConfidenceEscalation()
    if not request.images:  # nothing to budget
        return finalize(generate_batch(model, processor, [replace(request, num_visual_tokens=0)], cache))
    cache = cache if cache is not None else VisualTokenCache()
    num_queries = processor.num_queries
    attempts: list[GenerationResult] = []
    budget: int | None = policy.first_budget(num_queries)
    while budget is not None:
        if attempts and budget <= attempts[-1].num_visual_tokens:
            raise MQTError(f"The budget policy must escalate; it proposed {budget} after {attempts[-1].num_visual_tokens}.")
        attempts.append(generate_batch(model, processor, [replace(request, num_visual_tokens=budget)], cache)[0])
        if attempts[-1].finish_reason in ("timeout", "cancelled"):
            break
        budget = policy.next_budget(attempts, num_queries)
    return finalize(attempts)
