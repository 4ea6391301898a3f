"""The budget rules of `mqt_vlm.vllm` (no vLLM needed), and the core's independence from vLLM."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mqt_vlm.errors import MQTError
from mqt_vlm.vllm.budgets import budgets_of_missing, resolve_budgets


def test_one_int_applies_to_every_image() -> None:
    assert resolve_budgets({"num_visual_tokens": 4}, 3, 16, 8) == [4, 4, 4]
    assert resolve_budgets({"num_visual_tokens": np.int64(16)}, 1, 16, 8) == [16]


def test_default_budget_when_absent() -> None:
    assert resolve_budgets({}, 2, 16, 8) == [8, 8]
    assert resolve_budgets({"num_visual_tokens": None}, 1, 16, 8) == [8]


def test_one_budget_per_image() -> None:
    assert resolve_budgets({"num_visual_tokens": [2, 16]}, 2, 16, 8) == [2, 16]
    assert resolve_budgets({"num_visual_tokens": (1,)}, 1, 16, 8) == [1]


@pytest.mark.parametrize("bad", [0, 17, -1, "x", "4", 4.0, True, [4, 0], [4, "x"]])
def test_bad_budgets_are_refused(bad: object) -> None:
    with pytest.raises(MQTError, match="num_visual_tokens"):
        resolve_budgets({"num_visual_tokens": bad}, 1 if not isinstance(bad, list) else 2, 16, 8)


def test_list_length_must_match_the_images() -> None:
    with pytest.raises(MQTError, match="2 budgets but the request has 3 image"):
        resolve_budgets({"num_visual_tokens": [4, 4]}, 3, 16, 8)


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(MQTError, match="Unknown mm_processor_kwargs \\['num_visual_token'\\]"):
        resolve_budgets({"num_visual_token": 4}, 1, 16, 8)


def test_bad_default_is_refused() -> None:
    with pytest.raises(MQTError):
        resolve_budgets({}, 1, 16, 32)


def test_budgets_of_missing_keeps_prompt_order() -> None:
    assert budgets_of_missing([2, 8, 16], [False, True, False]) == [2, 16]
    assert budgets_of_missing([2, 8], [True, True]) == []


def test_core_and_package_do_not_import_vllm() -> None:
    code = ("import sys, mqt_vlm, mqt_vlm.vllm, mqt_vlm.vllm.budgets, mqt_vlm.cli.main; "
            "mqt_vlm.cli.main.build_app(); "
            "assert not any(m == 'vllm' or m.startswith('vllm.') for m in sys.modules), 'vllm imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
