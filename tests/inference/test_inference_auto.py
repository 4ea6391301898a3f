"""The automatic budget: policy rules on made-up results, then end to end on a tiny model."""

from __future__ import annotations

import dataclasses
import math

import pytest

from mqt_vlm.errors import MQTError
from mqt_vlm.inference import (
    AutoBudget,
    AutoBudgetConfig,
    ConfidenceEscalation,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
    VisualTokenCache,
    generate_auto,
    generate_batch,
    generate_one,
)
from mqt_vlm.inference.auto_budget import BudgetPolicyError, confidence


def result(m: int, probs: list[float]) -> GenerationResult:
    return GenerationResult(text="x", token_ids=[1] * len(probs), finish_reason="stop", num_visual_tokens=m,
                            prompt_tokens=10 + m, visual_tokens=m, logprobs=[math.log(p) for p in probs],
                            time_to_first_token_s=0.0, total_time_s=0.0)


def test_config_validation_and_schedule():
    assert AutoBudgetConfig().schedule(256) == [16, 64, 256]
    assert AutoBudgetConfig().schedule(16) == [16]
    assert AutoBudgetConfig((2, 8, 64)).schedule(16) == [2, 8, 16]
    assert AutoBudgetConfig.parse("4, 32", 0.3).budgets == (4, 32)
    for bad in (dict(budgets=()), dict(budgets=(16, 8)), dict(budgets=(0, 4)), dict(budgets=(4, 4)),
                dict(threshold=1.5), dict(threshold=-0.1), dict(metric="entropy")):
        with pytest.raises(MQTError):
            AutoBudgetConfig(**bad)
    with pytest.raises(MQTError):
        AutoBudgetConfig.parse("16,x", 0.5)


def test_policy_escalates_while_unsure_and_stops_at_the_top():
    policy = ConfidenceEscalation(AutoBudgetConfig((16, 64, 256), threshold=0.5))
    assert policy.first_budget(256) == 16
    assert policy.next_budget([result(16, [0.9, 0.8])], 256) is None  # sure enough
    assert policy.next_budget([result(16, [0.9, 0.1])], 256) == 64  # geometric mean 0.3
    assert policy.next_budget([result(16, [0.2]), result(64, [0.2])], 256) == 256
    assert policy.next_budget([result(16, [0.2]), result(64, [0.2]), result(256, [0.2])], 256) is None
    first = ConfidenceEscalation(AutoBudgetConfig((16, 64), threshold=0.5, metric="first_token_prob"))
    assert first.next_budget([result(16, [0.9, 0.01, 0.01])], 256) is None
    assert confidence(result(16, [0.5, 0.5]), "mean_prob") == pytest.approx(0.5)
    assert confidence(result(16, []), "mean_prob") == 0.0


def test_auto_end_to_end_reuses_the_encoding_and_reports_budgets(tiny_model, photos):
    model, processor = tiny_model
    prompt = processor.format_prompt("What is in the picture?")
    request = GenerationRequest(prompt, [photos["coffee"]], 0, SamplingParams(max_new_tokens=5))
    calls = []
    handle = model.vision_tower.embeddings.register_forward_hook(lambda *a: calls.append(1))  # runs once per tower pass
    try:
        never_sure = generate_auto(model, processor, request, ConfidenceEscalation(AutoBudgetConfig((2, 8, 16), 1.0)))
        always_sure = generate_auto(model, processor, request, ConfidenceEscalation(AutoBudgetConfig((2, 8, 16), 0.0)))
    finally:
        handle.remove()
    assert never_sure.budgets_tried == (2, 8, 16) and never_sure.num_visual_tokens == 16
    assert always_sure.budgets_tried == (2,) and always_sure.num_visual_tokens == 2
    assert len(calls) == 2  # one encoding per generate_auto call, however many budgets it tried
    fixed = generate_batch(model, processor, [GenerationRequest(prompt, [photos["coffee"]], 16, request.params)])[0]
    assert never_sure.token_ids == fixed.token_ids  # the accepted attempt is an ordinary answer at that budget
    # a threshold just above the first attempt's confidence: stop at 8 if 8 reaches it, else go on to 16
    cache = VisualTokenCache()
    at_2 = generate_batch(model, processor, [GenerationRequest(prompt, [photos["coffee"]], 2, request.params)], cache)[0]
    at_8 = generate_batch(model, processor, [GenerationRequest(prompt, [photos["coffee"]], 8, request.params)], cache)[0]
    threshold = min(confidence(at_2, "mean_prob") * 1.001, 1.0)
    expected = (2, 8) if confidence(at_8, "mean_prob") >= threshold else (2, 8, 16)
    middle = generate_auto(model, processor, request, ConfidenceEscalation(AutoBudgetConfig((2, 8, 16), threshold)), cache)
    assert middle.budgets_tried == expected


class Fixed:
    """A policy proposing a fixed list of budgets, one per attempt (None: accept)."""

    def __init__(self, *budgets: int | None) -> None:
        self.budgets = list(budgets)

    def first_budget(self, num_queries: int) -> int:
        return self.budgets[0]

    def next_budget(self, attempts, num_queries: int) -> int | None:
        return self.budgets[len(attempts)] if len(attempts) < len(self.budgets) else None


def test_auto_budget_walk_is_one_object():
    """AutoBudget, which generate_auto and the server's worker both drive: escalate while the policy
    asks, stop on acceptance, on timeout/cancel, and refuse a policy that does not escalate."""
    auto = AutoBudget(ConfidenceEscalation(AutoBudgetConfig((2, 8, 16), 1.0)), 16)
    assert auto.budget == 2 and auto.largest() == 16
    assert auto.record(result(2, [0.5])) and auto.budget == 8
    assert auto.record(result(8, [0.5])) and auto.budget == 16
    assert not auto.record(result(16, [0.5]))
    assert auto.result().budgets_tried == (2, 8, 16)
    timed_out = AutoBudget(ConfidenceEscalation(AutoBudgetConfig((2, 8), 1.0)), 16)
    assert not timed_out.record(dataclasses.replace(result(2, [0.1]), finish_reason="timeout"))
    assert AutoBudget(ConfidenceEscalation(AutoBudgetConfig((4, "max"), 1.0)), 32).largest() == 32
    assert AutoBudgetConfig.parse("16,64,M", 0.5).schedule(256) == [16, 64, 256]
    assert AutoBudgetConfig.parse("16,64,max", 0.5).schedule(32) == [16, 32]
    stuck = AutoBudget(Fixed(4, 4), 16)
    with pytest.raises(BudgetPolicyError, match="must escalate"):
        stuck.record(result(4, [0.1]))
    with pytest.raises(BudgetPolicyError, match="1..16"):
        AutoBudget(Fixed(32), 16)
    with pytest.raises(MQTError):
        AutoBudgetConfig(("max", 16))


def test_generate_auto_refuses_a_policy_that_does_not_escalate(tiny_model, photos):
    model, processor = tiny_model
    request = GenerationRequest(processor.format_prompt("q"), [photos["coffee"]], "auto", SamplingParams(max_new_tokens=2))
    with pytest.raises(BudgetPolicyError, match="proposed 2 after 4"):
        generate_auto(model, processor, request, Fixed(4, 2))
    assert generate_one(model, processor, request, Fixed(2, 4)).budgets_tried == (2, 4)
    with pytest.raises(MQTError, match="generate_auto"):
        generate_batch(model, processor, [request])  # "auto" is a policy, not a number the model sees
