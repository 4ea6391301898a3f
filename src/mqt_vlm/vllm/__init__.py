"""Serve MQT models with vLLM (`pip install mqt-vlm[vllm]`; docs/vllm.md).

The package plugs into vLLM through the `vllm.general_plugins` entry point (`plugin.register`):
once mqt-vlm is installed, `vllm.LLM(model=folder)` and vLLM's OpenAI server load any
`MQTForConditionalGeneration` folder (`save_pretrained`, `mqt train`, `mqt convert`, `mqt export`).
The budget is per request: `mm_processor_kwargs={"num_visual_tokens": m}` (one int, or one per image).

Nothing here imports vLLM; the modules that do (`model`, `processing`, `tokenizer`, `plugin`) are
loaded by vLLM itself. `engine_kwargs` gives the settings that reproduce our own generation.
"""

from __future__ import annotations

from typing import Any

from mqt_vlm.vllm.budgets import BUDGET_KEY, resolve_budgets

__all__ = ["BUDGET_KEY", "engine_kwargs", "model_path", "resolve_budgets"]


def model_path(model: str) -> str:
    """A folder vLLM can load: `builtin:NAME` becomes the shipped folder, a folder stays itself."""
    from mqt_vlm.loading import resolve_model_path

    return str(resolve_model_path(model))


def engine_kwargs(model: str, **overrides: Any) -> dict[str, Any]:
    """`vllm.LLM(**engine_kwargs(model))`: the folder, the released tokenization (tokenizer mode
    "mqt") and the model's dtype; `overrides` win (e.g. tensor_parallel_size=2)."""
    from mqt_vlm.vllm.plugin import TOKENIZER_MODE

    settings: dict[str, Any] = {"model": model_path(model), "tokenizer_mode": TOKENIZER_MODE}
    settings.update(overrides)
    return settings
