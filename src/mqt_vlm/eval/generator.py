"""Answer a batch of benchmark questions at one visual-token budget with a loaded model.

The runner only needs something with this shape (`Generator`), so tests and other backends can plug
in without a model; `ModelGenerator` is the real one, answering through `generate_batch` (the
project's one generation path). It follows LLaVA-1.5's evaluation: the `vicuna_v1` prompt with
`<image>\\n` before the question, greedy decoding, the new tokens decoded without special tokens and
stripped.

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
    """What the runner calls: answers for `items` at budget m, plus the FLOPs of a prompt. A
    generator may also have `prepare(items)`, called once per batch before its budgets, to do
    once what every budget shares (`ModelGenerator` encodes the images there)."""

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
    """Greedy answers from an `MQTForConditionalGeneration` and its `MQTProcessor`, through the one
    generation path (`generate_batch`).

    A sweep asks for the same questions at several budgets. `prepare(items)` (the runner calls it
    once per batch) loads the batch's images and encodes each once at M into the encode-once cache;
    every budget then reads the first m of those M tokens (the prefix property), so the vision
    tower runs once per image for the whole sweep instead of once per image and budget, and the
    answers are the ones a separate run per budget gives (tested).
    """

    def __init__(self, model: Any, processor: Any, cache_bytes: int = 512 * 1024 * 1024) -> None:
        from mqt_vlm.inference.cache import VisualTokenCache

        self.model = model
        self.processor = processor
        self.num_queries = int(processor.num_queries)
        self.cache = VisualTokenCache(cache_bytes)
        self._prepared: dict[int, tuple[EvalItem, Image.Image]] = {}  # id(item) -> (item, image) of the batch
        self._shape: Any = None

    def _image(self, item: EvalItem) -> Image.Image:
        entry = self._prepared.get(id(item))
        return entry[1] if entry is not None and entry[0] is item else load_item_image(item)

    def prepare(self, items: Sequence[EvalItem]) -> None:
        """Load and encode the images of `items` once, for every budget asked of them next."""
        from mqt_vlm.inference.encoding import encode_images

        self._prepared = {id(item): (item, load_item_image(item)) for item in items}
        images = [image for _, image in self._prepared.values()]
        if not images:
            return
        # the whole batch must stay in the cache until its last budget: grow the cache to fit it
        mqt = self.model.mqt
        per_image = self.num_queries * int(mqt.config.output_dim) * mqt.query.element_size()  # one [M, D] entry
        self.cache.max_bytes = max(self.cache.max_bytes, per_image * len(images))
        encode_images(self.model, self.processor, images, self.cache)

    def __call__(self, items: Sequence[EvalItem], budget: int, max_new_tokens: int) -> list[Generated]:
        from mqt_vlm.inference.batch import generate_batch
        from mqt_vlm.inference.params import GenerationRequest, SamplingParams

        if not items:
            return []
        params = SamplingParams(max_new_tokens=max_new_tokens)  # greedy, as LLaVA-1.5 is evaluated
        requests = [GenerationRequest(self.processor.format_prompt(item.text), [self._image(item)], budget, params)
                    for item in items]
        results = generate_batch(self.model, self.processor, requests, self.cache)
        return [Generated(r.text.strip(), r.prompt_tokens - r.visual_tokens) for r in results]

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
