"""The `vllm.general_plugins` entry point: vLLM calls `register()` in every process it starts.

It registers, by name only (nothing of vLLM's model code is imported here):
- the architecture `MQTForConditionalGeneration` (what our folders' config.json names);
- the tokenizer mode "mqt" (released tokenization, `tokenizer.py`), rendered by vLLM's own
  Hugging Face renderer (vLLM picks a renderer by tokenizer mode);
and imports `mqt_vlm`, which registers `model_type: mqt_vlm` with transformers' AutoConfig so vLLM
can read the folder's config. Safe to call more than once.
"""

from __future__ import annotations

ARCHITECTURE = "MQTForConditionalGeneration"
TOKENIZER_MODE = "mqt"


def register() -> None:
    import mqt_vlm  # noqa: F401  (AutoConfig/AutoProcessor registration)
    from vllm import ModelRegistry
    from vllm.renderers.registry import RENDERER_REGISTRY
    from vllm.tokenizers.registry import TokenizerRegistry

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, "mqt_vlm.vllm.model:MQTForConditionalGeneration")
    if TOKENIZER_MODE not in TokenizerRegistry.tokenizers:
        TokenizerRegistry.register(TOKENIZER_MODE, "mqt_vlm.vllm.tokenizer", "MQTTokenizer")
    if TOKENIZER_MODE not in RENDERER_REGISTRY.renderers:
        RENDERER_REGISTRY.register(TOKENIZER_MODE, "vllm.renderers.hf", "HfRenderer")
