"""Answer a batch of benchmark questions at one visual-token budget with a loaded model.

The runner only needs something with this shape (`Generator`), so tests and other backends can plug
in without a model; `ModelGenerator` is the real one. It follows LLaVA-1.5's evaluation: the
`vicuna_v1` prompt with `<image>\\n` before the question, greedy decoding, the new tokens decoded
without special tokens and stripped.

Batches are left-padded. LLaVA's scripts run one question at a time; batched greedy decoding can
differ from it in the last float bits, which very rarely flips a token. Use `--batch-size 1` for
bit-level parity with single-question runs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

from mqt_vlm.errors import MQTError
from mqt_vlm.eval.benchmarks.base import EmbeddedImage, EvalItem

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generated:
    """One answer and the number of text tokens its prompt cost (visual tokens excluded)."""

    text: str
    text_tokens: int


class Generator(Protocol):
    """What the runner calls: answers for `items` at budget m, plus the FLOPs of a prompt."""

    num_queries: int

    def __call__(self, items: Sequence[EvalItem], budget: int, max_new_tokens: int) -> list[Generated]: ...

    def tflops(self, budget: int, text_tokens: int) -> float | None: ...


def load_item_image(item: EvalItem) -> Image.Image:
    """The item's image as RGB, through the package's safe loader (clear errors for bad files)."""
    from mqt_vlm.processing.images import load_image

    if isinstance(item.image, EmbeddedImage):
        return load_image(item.image.to_bytes(), name=item.image.name)
    return load_image(item.image)


class ModelGenerator:
    """Greedy answers from an `MQTForConditionalGeneration` and its `MQTProcessor`."""

    def __init__(self, model: Any, processor: Any) -> None:
        self.model = model
        self.processor = processor
        self.num_queries = int(processor.num_queries)
        parameter = next(model.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype
        self._shape: Any = None

    def __call__(self, items: Sequence[EvalItem], budget: int, max_new_tokens: int) -> list[Generated]:
        import torch

        if not items:
            return []
        images = [load_item_image(item) for item in items]
        prompts = [self.processor.format_prompt(item.text) for item in items]
        batch = self.processor(images=images, text=prompts, num_visual_tokens=budget, padding_side="left")
        inputs = {name: tensor.to(self.device) for name, tensor in batch.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        tokenizer = self.processor.tokenizer
        with torch.inference_mode():
            output = self.model.generate(
                **inputs, num_visual_tokens=budget, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                pad_token_id=tokenizer.pad_token_id,
            )
        prompt_length = inputs["input_ids"].shape[1]
        texts = tokenizer.batch_decode(output[:, prompt_length:], skip_special_tokens=True)
        text_tokens = (inputs["attention_mask"].sum(dim=1) - budget).tolist()
        return [Generated(text.strip(), int(n)) for text, n in zip(texts, text_tokens)]

    def tflops(self, budget: int, text_tokens: int) -> float | None:
        """Analytic TFLOPs of one prompt (vision + MQT + LLM prefill), as the paper's compute figure."""
        from mqt_vlm.analysis.flops import from_config, model_flops

        try:
            if self._shape is None:
                self._shape = from_config(self.model.config)
            return model_flops(self._shape, budget, text_tokens=max(0, int(text_tokens))).tflops
        except MQTError as exc:
            logger.warning("No FLOPs for this model: %s", exc)
            return None
