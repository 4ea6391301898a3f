"""Inference with a per-request visual-token budget: batched generation, stop strings, streaming,
the encode-once visual-token cache, and the automatic budget policy.

Names are imported lazily (as in `mqt_vlm/__init__.py`) so that `mqt --help`, which imports
`mqt_vlm.inference.cli`, does not pull in transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AutoBudgetConfig": "mqt_vlm.inference.auto_budget",
    "BudgetPolicy": "mqt_vlm.inference.auto_budget",
    "ConfidenceEscalation": "mqt_vlm.inference.auto_budget",
    "AutoBudget": "mqt_vlm.inference.auto_budget",
    "generate_auto": "mqt_vlm.inference.auto_budget",
    "generate_one": "mqt_vlm.inference.auto_budget",
    "generate_batch": "mqt_vlm.inference.batch",
    "prepare_request": "mqt_vlm.inference.batch",
    "VisualTokenCache": "mqt_vlm.inference.cache",
    "image_digest": "mqt_vlm.inference.cache",
    "encode_images": "mqt_vlm.inference.encoding",
    "GenerationRequest": "mqt_vlm.inference.params",
    "GenerationResult": "mqt_vlm.inference.params",
    "SamplingParams": "mqt_vlm.inference.params",
    "build_prompt": "mqt_vlm.inference.prompting",
    "CallbackStreamer": "mqt_vlm.inference.streaming",
    "PrintStreamer": "mqt_vlm.inference.streaming",
    "TextStreamer": "mqt_vlm.inference.streaming",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from mqt_vlm.inference.auto_budget import (
        AutoBudget,
        AutoBudgetConfig,
        BudgetPolicy,
        ConfidenceEscalation,
        generate_auto,
        generate_one,
    )
    from mqt_vlm.inference.batch import generate_batch, prepare_request
    from mqt_vlm.inference.cache import VisualTokenCache, image_digest
    from mqt_vlm.inference.encoding import encode_images
    from mqt_vlm.inference.params import GenerationRequest, GenerationResult, SamplingParams
    from mqt_vlm.inference.prompting import build_prompt
    from mqt_vlm.inference.streaming import CallbackStreamer, PrintStreamer, TextStreamer


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mqt_vlm.inference' has no attribute {name!r}")
