"""`MQTForConditionalGeneration` for vLLM: the same three parts as the Hugging Face model.

Shape glossary
    I   images in the engine's encoder batch      N   vision patches per image
    Cv  vision width                              M   number of queries
    m_i budget of image i (1..M)                  D   LLM hidden size

- vision tower: vLLM's CLIP or SigLIP encoder (tensor-parallel), built only up to
  `vision_feature_layer` and without the post-norm, which is exactly the hidden state the Hugging
  Face model reads (`hidden_states[vision_feature_layer]`, CLS dropped for "default");
- MQT: our own `MatryoshkaQueryTransformer` module, unchanged and replicated on every rank (a few
  MB; its output at budget m is the first m of its M rows, so one pass serves every budget);
- language model: vLLM's implementation of the checkpoint's causal LM (`text_config`).

The m_i image tokens of each image arrive in the prompt from `processing.py`; `embed_multimodal`
returns image i's first m_i visual tokens and vLLM writes them over those positions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from transformers import CLIPVisionConfig, SiglipVisionConfig
from vllm.config import VllmConfig
from vllm.model_executor.models.clip import CLIPVisionTransformer
from vllm.model_executor.models.interfaces import MultiModalEmbeddings, SupportsMultiModal
from vllm.model_executor.models.siglip import SiglipVisionTransformer
from vllm.model_executor.models.utils import (
    AutoWeightsLoader,
    WeightsMapper,
    init_vllm_registered_model,
    maybe_prefix,
)
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.sequence import IntermediateTensors

from mqt_vlm.errors import MQTError
from mqt_vlm.modeling.configuration import MQTConfig
from mqt_vlm.modeling.query_transformer import MatryoshkaQueryTransformer
from mqt_vlm.vllm.budgets import BUDGET_KEY
from mqt_vlm.vllm.processing import MQTDummyInputsBuilder, MQTMultiModalProcessor, MQTProcessingInfo


def feature_layer_count(config: MQTConfig) -> int:
    """How many tower layers produce `hidden_states[vision_feature_layer]` (embeddings = 0)."""
    layers = int(config.vision_config.num_hidden_layers)
    k = int(config.vision_feature_layer)
    k = k if k >= 0 else layers + 1 + k
    if not 1 <= k <= layers:
        raise MQTError(f"vision_feature_layer={config.vision_feature_layer} must select one of the tower's {layers} layers.")
    return k


def build_vision_tower(config: MQTConfig, quant_config: Any, prefix: str) -> nn.Module:
    vision = config.vision_config
    options = dict(quant_config=quant_config, num_hidden_layers_override=feature_layer_count(config),
                   require_post_norm=False, prefix=prefix)
    if isinstance(vision, CLIPVisionConfig):
        return CLIPVisionTransformer(vision, **options)
    if isinstance(vision, SiglipVisionConfig):
        return SiglipVisionTransformer(vision, use_head=False, **options)
    raise MQTError(
        f"The vLLM model supports CLIP and SigLIP vision towers; this checkpoint has {type(vision).__name__}. "
        "Serve it with `mqt serve` instead."
    )


@MULTIMODAL_REGISTRY.register_processor(
    MQTMultiModalProcessor, info=MQTProcessingInfo, dummy_inputs=MQTDummyInputsBuilder
)
class MQTForConditionalGeneration(nn.Module, SupportsMultiModal):
    # older CLIP layouts (and CLIP folders) keep the tower under `vision_model.`
    hf_to_vllm_mapper = WeightsMapper(orig_to_new_prefix={"vision_tower.vision_model.": "vision_tower."})

    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        if modality.startswith("image"):
            return "<image>"
        raise ValueError("MQT models take images only.")

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = "") -> None:
        super().__init__()
        config: MQTConfig = vllm_config.model_config.hf_config
        self.config = config
        self.configure_mm_token_handling(
            vocab_size=int(config.text_config.vocab_size), mm_token_ids=[int(config.image_token_id)]
        )
        with self._mark_tower_model(vllm_config, "image"):
            self.vision_tower = build_vision_tower(config, vllm_config.quant_config, maybe_prefix(prefix, "vision_tower"))
            self.mqt = MatryoshkaQueryTransformer(config.query_transformer_config)
        with self._mark_language_model(vllm_config):
            self.language_model = init_vllm_registered_model(
                vllm_config=vllm_config, hf_config=config.text_config, prefix=maybe_prefix(prefix, "language_model")
            )
        self.make_empty_intermediate_tensors = self.language_model.make_empty_intermediate_tensors

    # ---- images -> visual tokens -------------------------------------------------------------
    def embed_multimodal(self, **kwargs: object) -> MultiModalEmbeddings:
        pixel_values = kwargs.get("pixel_values")
        budgets = kwargs.get(BUDGET_KEY)
        if pixel_values is None:
            return []
        if isinstance(pixel_values, (list, tuple)):
            pixel_values = torch.stack(list(pixel_values))
        assert isinstance(pixel_values, torch.Tensor) and budgets is not None
        features = self.vision_tower(
            pixel_values.to(self.mqt.query.dtype),
            feature_select_strategy=self.config.vision_feature_select_strategy,
        )  # [I, N, Cv]
        visual = self.mqt(features)  # [I, M, D]
        counts = budgets.tolist() if isinstance(budgets, torch.Tensor) else [int(m) for m in budgets]  # type: ignore[union-attr]
        return [visual[i, : int(m)] for i, m in enumerate(counts)]  # I x [m_i, D]

    # ---- language model ----------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor | None,
        positions: torch.Tensor,
        intermediate_tensors: IntermediateTensors | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: object,
    ) -> torch.Tensor | IntermediateTensors:
        if intermediate_tensors is not None:
            inputs_embeds = None
        return self.language_model.model(input_ids, positions, intermediate_tensors, inputs_embeds=inputs_embeds)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        return self.language_model.compute_logits(hidden_states)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        return AutoWeightsLoader(self).load_weights(weights, mapper=self.hf_to_vllm_mapper)
