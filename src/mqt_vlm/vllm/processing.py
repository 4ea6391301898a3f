"""vLLM's multimodal processing for MQT models: images -> `pixel_values`, `<image>` -> m image tokens.

How a budget travels through vLLM:
- the request's `mm_processor_kwargs` (merged over the engine's) give one budget per image
  (`budgets.resolve_budgets`); bad budgets are refused before any image is touched;
- each image's budget becomes part of its processed data (`num_visual_tokens`, one int per image)
  and of its cache key, so vLLM's processor cache, encoder cache and prefix cache never mix two
  budgets of the same picture, and a request whose images are partly cached still gets each
  image's own budget;
- the prompt's single image token per image is replaced by m_i image tokens, so the engine's
  prompt length (and the usage it reports) includes the visual tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import BatchFeature
from vllm.config.multimodal import MultiModalDummyOptions
from vllm.inputs import MultiModalDataDict
from vllm.multimodal.hasher import MultiModalHasher
from vllm.multimodal.inputs import MultiModalFieldConfig, MultiModalKwargsItems
from vllm.multimodal.parse import MultiModalDataItems
from vllm.multimodal.processing import (
    BaseDummyInputsBuilder,
    BaseMultiModalProcessor,
    BaseProcessingInfo,
    PromptReplacement,
    PromptUpdate,
)
from vllm.multimodal.processing.context import TimingContext
from vllm.multimodal.processing.inputs import ProcessorInputs

from mqt_vlm.errors import MQTError
from mqt_vlm.modeling.configuration import MQTConfig
from mqt_vlm.processing.image_processor import MQTImageProcessor
from mqt_vlm.vllm.budgets import BUDGET_KEY, budgets_of_missing, resolve_budgets


@cache
def _image_processor(model_path: str, revision: str | None) -> MQTImageProcessor:
    return MQTImageProcessor.from_pretrained(model_path, revision=revision)


@cache
def _processor(model_path: str, revision: str | None) -> Any:
    from mqt_vlm.processing.processor import MQTProcessor

    return MQTProcessor.from_pretrained(model_path, revision=revision)


class MQTProcessingInfo(BaseProcessingInfo):
    def get_hf_config(self) -> MQTConfig:
        return self.ctx.get_hf_config(MQTConfig)

    def get_hf_processor(self, **kwargs: object) -> Any:
        """Our `MQTProcessor`; the budget is not a constructor argument, so kwargs are not passed on."""
        config = self.ctx.model_config
        return _processor(config.model, config.revision)

    def get_image_processor(self) -> MQTImageProcessor:
        config = self.ctx.model_config
        return _image_processor(config.model, config.revision)

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"image": None}

    @property
    def num_queries(self) -> int:
        return self.get_hf_config().num_queries

    def get_num_image_tokens(self, num_visual_tokens: object = None) -> int:
        """Image tokens one image takes in the prompt: its budget m (default: the model's)."""
        kwargs = {} if num_visual_tokens is None else {BUDGET_KEY: num_visual_tokens}
        return self.budgets(kwargs, 1)[0]

    def budgets(self, request_kwargs: Mapping[str, object], num_images: int) -> list[int]:
        """One budget per image: the request's kwargs over the engine's `--mm-processor-kwargs`."""
        merged = self.ctx.get_merged_mm_kwargs(request_kwargs)
        config = self.get_hf_config()
        return resolve_budgets(merged, num_images, config.num_queries, int(config.default_num_visual_tokens))

    def get_mm_max_tokens_per_item(self, seq_len: int, mm_counts: Mapping[str, int]) -> Mapping[str, int]:
        return {"image": self.num_queries}


class MQTDummyInputsBuilder(BaseDummyInputsBuilder[MQTProcessingInfo]):
    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return self.info.get_hf_config().image_token * mm_counts.get("image", 0)

    def get_dummy_mm_data(
        self,
        seq_len: int,
        mm_counts: Mapping[str, int],
        mm_options: MultiModalDummyOptions,
    ) -> MultiModalDataDict:
        side = int(self.info.get_hf_config().vision_config.image_size)
        return {
            "image": self._get_dummy_images(
                width=side, height=side, num_images=mm_counts.get("image", 0), overrides=mm_options.get("image")
            )
        }


def _as_pil(image: Any) -> Any:
    """vLLM hands over PIL images, or arrays for pre-decoded inputs (HWC uint8)."""
    if isinstance(image, torch.Tensor):
        image = image.cpu().numpy()
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[0] in (1, 3, 4) and image.shape[-1] not in (1, 3, 4):
            image = image.transpose(1, 2, 0)  # CHW -> HWC
        return Image.fromarray(image.astype(np.uint8).squeeze())
    return image


class MQTMultiModalProcessor(BaseMultiModalProcessor[MQTProcessingInfo]):
    def _num_images(self, inputs: ProcessorInputs) -> int:
        return inputs.mm_data_items.get_all_counts().get("image", 0)

    def apply(self, inputs: ProcessorInputs, timing_ctx: TimingContext) -> Any:
        self.info.budgets(inputs.hf_processor_mm_kwargs, self._num_images(inputs))  # refuse bad budgets first
        return super().apply(inputs, timing_ctx)

    def get_dummy_inputs(self, seq_len: int, mm_counts: Mapping[str, int], mm_options: MultiModalDummyOptions) -> ProcessorInputs:
        """Memory profiling must see the largest budget, M, not the default."""
        inputs = super().get_dummy_inputs(seq_len, mm_counts, mm_options)
        return dataclasses.replace(inputs, hf_processor_mm_kwargs={BUDGET_KEY: self.info.num_queries})

    def _get_mm_hashes(self, inputs: ProcessorInputs) -> dict[str, list[str]]:
        """vLLM keys an image by its content and the whole request's kwargs; ours is keyed by its
        content and its own budget (two budgets of one picture in one request differ; one picture
        at one budget is shared across requests whatever the other images asked for)."""
        hashes = super()._get_mm_hashes(dataclasses.replace(inputs, hf_processor_mm_kwargs={}))
        if "image" in hashes:
            budgets = self.info.budgets(inputs.hf_processor_mm_kwargs, len(hashes["image"]))
            algorithm = self.info.ctx.get_mm_config().mm_hasher_algorithm
            hashes["image"] = [
                MultiModalHasher.hash_kwargs(algorithm, image=h, **{BUDGET_KEY: m})
                for h, m in zip(hashes["image"], budgets)
            ]
        return hashes

    def _get_cache_missing_processor_kwargs(self, inputs: ProcessorInputs, mm_is_cached: Mapping[str, Sequence[bool]]) -> Mapping[str, object]:
        budgets = self.info.budgets(inputs.hf_processor_mm_kwargs, self._num_images(inputs))
        return {BUDGET_KEY: budgets_of_missing(budgets, mm_is_cached.get("image", []))}

    def _call_hf_processor(self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]) -> BatchFeature:
        extra = sorted(set(hf_data) - {"images"})
        if extra:
            raise MQTError(f"MQT models take images only, got {extra}.")
        images = [_as_pil(image) for image in hf_data.get("images") or []]  # type: ignore[union-attr]
        budgets = self.info.budgets(hf_kwargs, len(images))
        pixel_values = self.info.get_image_processor()(images, return_tensors="pt")["pixel_values"]  # [I, 3, H, W]
        dtype = self.info.ctx.model_config.dtype
        return BatchFeature({
            "pixel_values": pixel_values.to(dtype),
            BUDGET_KEY: torch.tensor(budgets, dtype=torch.long),  # [I]
        })

    def _get_mm_fields_config(self, hf_inputs: BatchFeature, hf_processor_mm_kwargs: Mapping[str, object]) -> Mapping[str, MultiModalFieldConfig]:
        return {"pixel_values": MultiModalFieldConfig.batched("image"), BUDGET_KEY: MultiModalFieldConfig.batched("image")}

    def _get_prompt_updates(
        self,
        mm_items: MultiModalDataItems,
        hf_processor_mm_kwargs: Mapping[str, object],
        out_mm_kwargs: MultiModalKwargsItems,
    ) -> Sequence[PromptUpdate]:
        image_token_id = int(self.info.get_hf_config().image_token_id)

        def replacement(item_idx: int) -> list[int]:
            m = int(out_mm_kwargs["image"][item_idx][BUDGET_KEY].data)
            return [image_token_id] * m

        return [PromptReplacement(modality="image", target=[image_token_id], replacement=replacement)]
