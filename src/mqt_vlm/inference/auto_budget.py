"""`visual_tokens: "auto"`: answer cheaply first, spend more visual tokens only when unsure.

MQT makes this cheap to try: an image is encoded once at M (the encode-once cache), and each
escalation only re-runs the LM prefill with a longer prefix of the same visual tokens. The policy
is an interface (`BudgetPolicy`) so deployments can plug in their own rule; the default,
`ConfidenceEscalation`, walks a schedule such as 16 -> 64 -> 256 and stops at the first answer whose
confidence reaches a threshold. Confidence is either the geometric-mean token probability of the
answer (exp of the mean log-probability) or the probability of its first token; both are computed
under the model's own distribution, before any sampling warper.

The escalation itself is written once, as `AutoBudget`: one request's walk through a policy (the
budget to try now, the attempts so far, when to stop). `generate_auto` drives it in a loop; the
server's worker drives the same object across batches, re-queueing the request between attempts.
Both stop at the first accepted answer, after the largest budget, or when an attempt timed out or
was cancelled, and both refuse a policy that proposes a budget no larger than the last one tried
(`BudgetPolicyError`: a bug in the policy, not in the request).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from mqt_vlm.budgets import AUTO, MAX, parse_budgets
from mqt_vlm.errors import MQTError
from mqt_vlm.inference.batch import generate_batch
from mqt_vlm.inference.cache import VisualTokenCache
from mqt_vlm.inference.params import GenerationRequest, GenerationResult
from mqt_vlm.inference.streaming import TextStreamer

Metric = Literal["mean_prob", "first_token_prob"]


@dataclass(frozen=True)
class AutoBudgetConfig:
    """Thresholds of the default policy. Budgets above the model's M are clipped to M; "max" (last)
    stands for M whatever it is."""

    budgets: tuple[int | str, ...] = (16, 64, 256)
    threshold: float = 0.5
    metric: Metric = "mean_prob"

    def __post_init__(self) -> None:
        budgets = tuple(self.budgets)
        if not budgets:
            raise MQTError("AutoBudgetConfig.budgets needs at least one budget.")
        ints = [b for b in budgets if b != MAX]
        for b in ints:
            if isinstance(b, bool) or not isinstance(b, int) or b < 1:
                raise MQTError(f"Auto budgets must be ints >= 1 (or 'max' last), got {b!r}.")
        if ints != sorted(set(ints)) or MAX in budgets[:-1]:
            raise MQTError(f"Auto budgets must be strictly increasing (with 'max' last if at all), got {list(budgets)}.")
        object.__setattr__(self, "budgets", budgets)
        if not isinstance(self.threshold, (int, float)) or not 0.0 <= self.threshold <= 1.0:
            raise MQTError(f"Auto threshold is a probability in [0, 1], got {self.threshold!r}.")
        if self.metric not in ("mean_prob", "first_token_prob"):
            raise MQTError(f"Auto metric must be 'mean_prob' or 'first_token_prob', got {self.metric!r}.")

    def schedule(self, num_queries: int) -> list[int]:
        """The budgets tried for a model with M = num_queries, in order."""
        return sorted({num_queries if b == MAX else min(int(b), num_queries) for b in self.budgets})

    @classmethod
    def parse(cls, budgets: str, threshold: float, metric: str = "mean_prob") -> AutoBudgetConfig:
        """From CLI strings such as "16,64,256" or "16,64,M" (the `--budgets` vocabulary; not yet clipped to M)."""
        return cls(tuple(parse_budgets(budgets, None, option="--auto-budgets")), threshold, metric)  # type: ignore[arg-type]


class BudgetPolicy(Protocol):
    """Chooses budgets for one request: a first budget, then either a larger one or None (accept).

    A policy may also define `largest_budget(num_queries)`, the most it will ever propose (the server
    checks a prompt's size at that budget before queueing it); without it M is assumed."""

    def first_budget(self, num_queries: int) -> int: ...

    def next_budget(self, attempts: Sequence[GenerationResult], num_queries: int) -> int | None: ...


class BudgetPolicyError(RuntimeError):
    """The policy proposed a budget that does not escalate (a bug in the policy, not in the request)."""


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

    def largest_budget(self, num_queries: int) -> int:
        return self.config.schedule(num_queries)[-1]


def finalize(attempts: Sequence[GenerationResult]) -> GenerationResult:
    """The accepted (last) attempt, reporting every budget tried."""
    return replace(attempts[-1], budgets_tried=tuple(a.num_visual_tokens for a in attempts))


class AutoBudget:
    """One "auto" request's escalation: `budget` is what to try now; `record(result)` says whether to
    try again (at the new `budget`); `result()` is the answer to return."""

    def __init__(self, policy: BudgetPolicy, num_queries: int) -> None:
        self.policy, self.num_queries = policy, num_queries
        self.attempts: list[GenerationResult] = []
        self.budget = self._checked(policy.first_budget(num_queries))

    def _checked(self, budget: object) -> int:
        if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= self.num_queries:
            raise BudgetPolicyError(f"The budget policy proposed {budget!r}; budgets are ints in 1..{self.num_queries}.")
        if self.attempts and budget <= self.attempts[-1].num_visual_tokens:
            raise BudgetPolicyError(f"The budget policy must escalate; it proposed {budget} after "
                                    f"{self.attempts[-1].num_visual_tokens}.")
        return budget

    def largest(self) -> int:
        """The largest budget this request may reach (for size limits checked up front)."""
        largest = getattr(self.policy, "largest_budget", None)
        return max(self.budget, min(int(largest(self.num_queries)), self.num_queries) if largest else self.num_queries)

    def record(self, result: GenerationResult) -> bool:
        """Add an attempt; True when the policy wants another one, at `self.budget`."""
        self.attempts.append(result)
        if result.finish_reason in ("timeout", "cancelled"):
            return False
        proposed = self.policy.next_budget(self.attempts, self.num_queries)
        if proposed is None:
            return False
        self.budget = self._checked(proposed)
        return True

    def result(self) -> GenerationResult:
        return finalize(self.attempts)


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
    if not request.images:  # nothing to budget: one plain answer
        return generate_batch(model, processor, [replace(request, num_visual_tokens=0)], cache)[0]
    cache = cache if cache is not None else VisualTokenCache()
    auto = AutoBudget(policy or ConfidenceEscalation(), processor.num_queries)
    while auto.record(generate_batch(model, processor, [replace(request, num_visual_tokens=auto.budget)], cache)[0]):
        pass
    return auto.result()


def generate_one(
    model: Any,
    processor: Any,
    request: GenerationRequest,
    policy: BudgetPolicy | None = None,
    cache: VisualTokenCache | None = None,
    streamer: TextStreamer | None = None,
) -> GenerationResult:
    """One request at its budget, "auto" included (what `mqt generate` and `mqt chat` answer with).

    An "auto" answer is known only once the policy accepts it, so a streamer gets it in one piece.
    """
    if request.num_visual_tokens != AUTO:
        return generate_batch(model, processor, [request], cache, streamer)[0]
    result = generate_auto(model, processor, request, policy, cache)
    if streamer is not None:
        streamer.on_text(0, result.text)
        streamer.on_finish(0, result)
    return result
