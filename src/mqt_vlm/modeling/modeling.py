"""`MQTForConditionalGeneration`: vision tower -> MQT -> causal LM, joined through inputs_embeds.

Shape glossary
    B   batch size (text sequences)          I   number of images in the batch
    L   sequence length (m image tokens included per image)
    N   vision patches per image             Cv  vision width
    M   number of queries                    m   visual tokens kept for an image (1..M)
    D   LLM hidden size                      V   vocabulary size

The budget m is always an explicit argument (an int, or one int per image); when it is omitted the
model uses `config.default_num_visual_tokens`. The model never draws a random budget: random draws
live in the trainer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import CausalLMOutputWithPast

from mqt_vlm.budgets import parse_budget
from mqt_vlm.errors import MQTError
from mqt_vlm.modeling.configuration import MQTConfig
from mqt_vlm.modeling.query_transformer import MatryoshkaQueryTransformer, sincos_pos_embed_2d

Budget = int | Sequence[int] | torch.Tensor | None


class MQTPreTrainedModel(PreTrainedModel):
    config_class = MQTConfig
    config: MQTConfig
    base_model_prefix = "mqt_vlm"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _skip_keys_device_placement = ["past_key_values"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, MatryoshkaQueryTransformer):
            cfg = module.config
            init.trunc_normal_(module.query, std=0.02)
            init.normal_(module.proj, std=(cfg.hidden_size or 1) ** -0.5)
            init.copy_(module.pos_embed, sincos_pos_embed_2d(cfg.hidden_size or 4, cfg.query_grid or (1, 1)))


class MQTForConditionalGeneration(MQTPreTrainedModel, GenerationMixin):
    """An elastic VLM. `forward`/`generate` take `num_visual_tokens` (int in 1..M, or one per image)."""

    def __init__(self, config: MQTConfig) -> None:
        super().__init__(config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.mqt = MatryoshkaQueryTransformer(config.query_transformer_config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.post_init()

    # ---- HF plumbing -------------------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module | None:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    @property
    def num_queries(self) -> int:
        return self.mqt.num_queries

    # ---- images -> visual tokens -------------------------------------------------------------
    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values [I, 3, H, W] -> vision features [I, N, Cv] (the configured layer, CLS dropped)."""
        if pixel_values.ndim != 4:
            raise MQTError(f"pixel_values must be [images, channels, height, width], got {tuple(pixel_values.shape)}.")
        tower_dtype = next(self.vision_tower.parameters()).dtype
        pixel_values = pixel_values.to(tower_dtype)
        features = self._tower_prefix(pixel_values)  # [I, 1 + N, Cv] or [I, N, Cv]
        if features is None:  # a tower of unknown layout: run it all and pick the layer
            out = self.vision_tower(pixel_values, output_hidden_states=True)
            features = out.hidden_states[self.config.vision_feature_layer]
        if self.config.vision_feature_select_strategy == "default":
            features = features[:, 1:]  # [I, N, Cv], CLS dropped
        return features

    def feature_layer_index(self) -> int:
        """Index k >= 0 into the tower's hidden_states (embeddings first) that the MQT reads."""
        layers = int(self.config.vision_config.num_hidden_layers)
        k = int(self.config.vision_feature_layer)
        k = k if k >= 0 else layers + 1 + k
        if not 0 <= k <= layers:
            raise MQTError(f"vision_feature_layer={self.config.vision_feature_layer} is outside the tower's {layers} layers.")
        return k

    def _tower_prefix(self, pixel_values: torch.Tensor) -> torch.Tensor | None:
        """hidden_states[vision_feature_layer] of a CLIP/SigLIP-layout tower, running only the layers
        it needs (the released code runs all of CLIP and drops the last layer's output: same
        features, one layer of work saved). None when the tower has another layout."""
        vision = getattr(self.vision_tower, "vision_model", self.vision_tower)  # transformers 5 flattens CLIP
        layers = getattr(getattr(vision, "encoder", None), "layers", None)
        if not isinstance(layers, nn.ModuleList) or not hasattr(vision, "embeddings"):
            return None
        k = self.feature_layer_index()  # hidden_states[k] is the output of k layers
        hidden = vision.embeddings(pixel_values)  # [I, 1 + N, Cv] (CLIP) or [I, N, Cv] (SigLIP)
        pre_norm = getattr(vision, "pre_layrnorm", None)  # CLIP only
        if pre_norm is not None:
            hidden = pre_norm(hidden)
        for layer in layers[:k]:
            hidden = layer(hidden, None)
        return hidden

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """All M visual tokens of each image, [I, M, D]. Any budget m is the first m rows, which is
        what makes encode-once caching exact."""
        features = self.get_image_features(pixel_values)  # [I, N, Cv]
        return self.mqt(features.to(self.mqt.query.dtype))  # [I, M, D]

    def resolve_budgets(self, num_visual_tokens: Budget, num_images: int) -> list[int]:
        """One validated budget per image (ints, or "M"/"max": the vocabulary of `mqt_vlm.budgets`)."""
        if num_visual_tokens is None:
            num_visual_tokens = self.config.default_num_visual_tokens
        if isinstance(num_visual_tokens, torch.Tensor):
            num_visual_tokens = num_visual_tokens.tolist()
        if isinstance(num_visual_tokens, (list, tuple)):
            if len(num_visual_tokens) != num_images:
                raise MQTError(
                    f"Got {len(num_visual_tokens)} budgets for {num_images} images; pass one int for all "
                    "images or exactly one per image."
                )
            return [int(parse_budget(m, self.num_queries)) for m in num_visual_tokens]
        return [int(parse_budget(num_visual_tokens, self.num_queries))] * num_images

    def _merge_visual_tokens(
        self,
        input_ids: torch.Tensor,
        inputs_embeds: torch.Tensor,
        visual: torch.Tensor,
        budgets: list[int],
    ) -> torch.Tensor:
        """Write the first m_i visual tokens of image i into the image-token positions, in order."""
        mask = input_ids == self.config.image_token_id  # [B, L]
        expected = sum(budgets)
        found = int(mask.sum())
        if found != expected:
            per_row = mask.sum(dim=1).tolist()
            raise MQTError(
                f"The prompt has {found} image-token positions (per sample: {per_row}) but the images "
                f"need {expected} (budgets {budgets}). Build the inputs with "
                "MQTProcessor(..., num_visual_tokens=m) using the same m you pass to the model."
            )
        if visual.shape[0] != len(budgets):
            raise MQTError(f"Got {visual.shape[0]} images' visual tokens for {len(budgets)} budgets.")
        if len(budgets) == input_ids.shape[0]:  # one image per sample: check each row
            for row, (count, m) in enumerate(zip(mask.sum(dim=1).tolist(), budgets)):
                if count != m:
                    raise MQTError(
                        f"Sample {row} has {count} image-token positions but its budget is {m}; "
                        "the processor and the model must use the same num_visual_tokens."
                    )
        selected = torch.cat([visual[i, :m] for i, m in enumerate(budgets)], dim=0)  # [sum m, D]
        selected = selected.to(inputs_embeds.dtype)
        return inputs_embeds.masked_scatter(mask.unsqueeze(-1), selected)  # [B, L, D]

    def embed_inputs(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        num_visual_tokens: Budget = None,
        visual_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings with the visual tokens written in: [B, L, D]."""
        mask = input_ids == self.config.image_token_id  # [B, L]
        text_ids = input_ids.masked_fill(mask, 0)  # the image id may lie outside the vocabulary
        inputs_embeds = self.get_input_embeddings()(text_ids)  # [B, L, D]
        if pixel_values is None and visual_embeds is None:
            if bool(mask.any()):
                raise MQTError(
                    "input_ids contain image tokens but no pixel_values (or visual_embeds) were given."
                )
            return inputs_embeds
        if visual_embeds is None:
            assert pixel_values is not None
            visual_embeds = self.encode_images(pixel_values)  # [I, M, D]
        budgets = self.resolve_budgets(num_visual_tokens, visual_embeds.shape[0])
        return self._merge_visual_tokens(input_ids, inputs_embeds, visual_embeds, budgets)

    # ---- forward / generate ------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        num_visual_tokens: Budget = None,
        visual_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """`visual_embeds` [I, >=m, D] are precomputed visual tokens (e.g. from an encode-once
        cache); when given, the vision tower and the MQT are skipped."""
        if (input_ids is None) == (inputs_embeds is None):
            raise MQTError("Pass exactly one of input_ids or inputs_embeds.")
        if inputs_embeds is None:
            assert input_ids is not None
            prefill = past_key_values is None or past_key_values.get_seq_length() == 0
            has_image_tokens = bool((input_ids == self.config.image_token_id).any())
            if has_image_tokens or prefill:
                inputs_embeds = self.embed_inputs(input_ids, pixel_values, num_visual_tokens, visual_embeds)
            else:  # decoding: the images are already in the KV cache
                inputs_embeds = self.get_input_embeddings()(input_ids)
        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )
