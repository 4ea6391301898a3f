"""Analytic FLOPs of an elastic VLM (vision tower -> MQT or MLP projector -> LLM), per image.

Accounting (see docs/flops.md for the table against the paper):
- FLOPs = 2 x multiply-adds of the matrix products (linear layers, the patch convolution,
  attention's QK^T and AV). Norms, activations, softmax, rotary embeddings and the bicubic resize of
  the key positions are ignored: they are < 0.1% at 7B scale, and torch's FlopCounterMode ignores
  them too, so `measure_flops` checks the formulas exactly on tiny models.
- Attention counts the full L x L score matrix (what dense kernels compute and what FlopCounterMode
  reports), not the causal half.
- Vision: the presets count every layer of the tower, although features come from hidden_states[-2]
  (the released code runs the full CLIP tower); our model stops at the feature layer, so
  `from_config` counts only the layers it runs. CLS token included (577 tokens for CLIP-L/336).
- Connector: the MQT computes all M queries and slices m, so its cost (6.2 GFLOPs for MQT-LLaVA) does
  not depend on m; LLaVA-1.5's 2-layer MLP runs on all 576 patches.
- LLM prefill: one sequence of m visual tokens + `text_tokens` text tokens (the `<image>` placeholder
  is replaced, not kept); lm_head on the last position only (generation; set
  `LLMShape.lm_head_positions="all"` to count a plain forward's logits at every position).
- `DEFAULT_TEXT_TOKENS = 53` is the text length whose curve is closest to the paper's compute figure
  (minimax relative error 5.7% over its 7 points). It is what a `vicuna_v1` prompt costs: the system
  prompt and "USER: " are 34 tokens with BOS, a short VQA question with its answer-format suffix ~20.
- Decoding cost per generated token is separate (`llm_decode_flops`): the paper plots prefill only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mqt_vlm.analysis.shapes import (
    LLMShape,
    MLPProjectorShape,
    ModelShape,
    MQTShape,
    VisionShape,
    available_presets,
    from_config,
    load_preset,
)
from mqt_vlm.budgets import check_budget
from mqt_vlm.errors import MQTError

__all__ = [
    "DEFAULT_TEXT_TOKENS",
    "FlopsBreakdown",
    "LLMShape",
    "MLPProjectorShape",
    "MQTShape",
    "ModelShape",
    "VisionShape",
    "available_presets",
    "connector_flops",
    "from_config",
    "llm_decode_flops",
    "llm_prefill_flops",
    "load_preset",
    "measure_flops",
    "mlp_projector_flops",
    "model_flops",
    "mqt_flops",
    "vision_flops",
]

DEFAULT_TEXT_TOKENS = 53


def _attention_flops(q_len: int, k_len: int, width: int) -> int:
    """QK^T and AV, summed over heads (heads * head_dim = width)."""
    return 2 * 2 * q_len * k_len * width


def _mha_flops(q_len: int, k_len: int, width: int) -> int:
    """nn.MultiheadAttention: q, k, v and out projections plus attention."""
    projections = 2 * width * width * (q_len + 2 * k_len + q_len)
    return projections + _attention_flops(q_len, k_len, width)


def vision_flops(shape: VisionShape) -> int:
    """One image through the ViT: patch convolution + `layers_run` transformer layers."""
    seq, width = shape.seq_len, shape.width
    patch_embed = 2 * shape.num_patches * width * shape.channels * shape.patch_size**2
    per_layer = _mha_flops(seq, seq, width) + 2 * seq * 2 * width * shape.mlp_size
    head = 0
    if shape.attention_pool_head:  # one probe query attends to the patches, then an MLP
        head = _mha_flops(1, shape.num_patches, width) + 2 * 2 * width * shape.mlp_size
    return patch_embed + shape.layers_run * per_layer + head


def mqt_flops(shape: MQTShape, num_patches: int) -> int:
    """One image through the query transformer (all M queries, whatever the budget)."""
    queries, width = shape.num_queries, shape.width
    kv_proj = 2 * num_patches * shape.kv_dim * width if shape.kv_dim != width else 0
    cross = _mha_flops(queries, num_patches, width)
    block = _mha_flops(queries, queries, width) + cross + 2 * 2 * queries * width * shape.mlp_hidden
    proj = 2 * queries * width * shape.output_dim
    return kv_proj + cross + (shape.depth - 1) * block + proj


def mlp_projector_flops(shape: MLPProjectorShape, num_patches: int) -> int:
    """LLaVA-1.5's two linear layers on every patch."""
    return 2 * num_patches * (shape.in_dim * shape.hidden_dim + shape.hidden_dim * shape.out_dim)


def connector_flops(spec: ModelShape) -> int:
    if isinstance(spec.connector, MQTShape):
        return mqt_flops(spec.connector, spec.vision.num_patches)
    return mlp_projector_flops(spec.connector, spec.vision.num_patches)


def _llm_linear_flops_per_token(shape: LLMShape) -> int:
    """Per token per layer: q, k, v, o projections and the (gated) MLP."""
    q_width, kv_width = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    attn_proj = 2 * shape.hidden * (2 * q_width + 2 * kv_width)
    mlp = 2 * (3 if shape.gated_mlp else 2) * shape.hidden * shape.intermediate
    return attn_proj + mlp


def llm_prefill_flops(shape: LLMShape, seq_len: int) -> int:
    """One sequence of `seq_len` tokens through the decoder, full (non-causal-halved) attention."""
    if seq_len < 1:
        raise MQTError(f"seq_len must be >= 1, got {seq_len}.")
    q_width = shape.heads * shape.head_dim  # GQA: keys are shared, the products are not
    per_layer = seq_len * _llm_linear_flops_per_token(shape) + _attention_flops(seq_len, seq_len, q_width)
    head_positions = seq_len if shape.lm_head_positions == "all" else 1
    return shape.layers * per_layer + 2 * head_positions * shape.hidden * shape.vocab


def llm_decode_flops(shape: LLMShape, context_len: int) -> int:
    """One generated token with `context_len` tokens already in the KV cache (it attends to
    context_len + 1 keys, itself included); lm_head on that one position."""
    if context_len < 0:
        raise MQTError(f"context_len must be >= 0, got {context_len}.")
    q_width = shape.heads * shape.head_dim
    per_layer = _llm_linear_flops_per_token(shape) + _attention_flops(1, context_len + 1, q_width)
    return shape.layers * per_layer + 2 * shape.hidden * shape.vocab


@dataclass(frozen=True)
class FlopsBreakdown:
    """FLOPs of answering about one image: encode it, then prefill visual + text tokens."""

    num_visual_tokens: int
    text_tokens: int
    vision: int
    connector: int
    llm_prefill: int

    @property
    def total(self) -> int:
        return self.vision + self.connector + self.llm_prefill

    @property
    def tflops(self) -> float:
        return self.total / 1e12

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_visual_tokens": self.num_visual_tokens,
            "text_tokens": self.text_tokens,
            "vision_tflops": self.vision / 1e12,
            "connector_tflops": self.connector / 1e12,
            "llm_prefill_tflops": self.llm_prefill / 1e12,
            "total_tflops": self.tflops,
        }


def model_flops(
    spec: ModelShape,
    num_visual_tokens: int | None = None,
    text_tokens: int = DEFAULT_TEXT_TOKENS,
    include_vision: bool = True,
) -> FlopsBreakdown:
    """FLOPs at budget m = `num_visual_tokens` (default: M for the MQT, all N patches for an MLP
    projector, which cannot use any other count)."""
    max_tokens = spec.max_visual_tokens
    if num_visual_tokens is None:
        num_visual_tokens = max_tokens
    m = check_budget(num_visual_tokens, max_tokens)
    if isinstance(spec.connector, MLPProjectorShape) and m != max_tokens:
        raise MQTError(f"{spec.name} feeds all {max_tokens} patches to the LLM; it cannot use {m} visual tokens.")
    if isinstance(text_tokens, bool) or not isinstance(text_tokens, int) or text_tokens < 0:
        raise MQTError(f"text_tokens must be an int >= 0, got {text_tokens!r}.")
    return FlopsBreakdown(
        num_visual_tokens=m,
        text_tokens=text_tokens,
        vision=vision_flops(spec.vision) if include_vision else 0,
        connector=connector_flops(spec),
        llm_prefill=llm_prefill_flops(spec.llm, m + text_tokens),
    )


# ---- measurement ---------------------------------------------------------------------------------


def _cpu_sdpa_flop(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _native_mha_flop(query_shape: Any, key_shape: Any, value_shape: Any, embed_dim: int, *args: Any, **kwargs: Any) -> int:
    """nn.MultiheadAttention's inference fast path (self-attention under no_grad) is one fused op."""
    batch = query_shape[0] if len(query_shape) == 3 else 1
    return batch * _mha_flops(query_shape[-2], key_shape[-2], embed_dim)


def measure_flops(model: Callable[..., Any], *args: Any, **inputs: Any) -> int:
    """FLOPs of `model(*args, **inputs)` under torch's FlopCounterMode, in inference mode.

    FlopCounterMode has no formula for the CPU SDPA kernel or the fused nn.MultiheadAttention op
    and would count them as 0; both are supplied here (passed per counter, nothing registered
    globally), so eager and SDPA attention measure the same. Inference mode rather than no_grad:
    under no_grad, FlopCounterMode's module tracker fails on the MQT (a view of a parameter that
    requires grad reaches a submodule without a grad_fn).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    formulas = {
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop,
        aten._native_multi_head_attention: _native_mha_flop,
    }
    counter = FlopCounterMode(display=False, custom_mapping=formulas)
    with torch.inference_mode(), counter:
        model(*args, **inputs)
    return int(counter.get_total_flops())
