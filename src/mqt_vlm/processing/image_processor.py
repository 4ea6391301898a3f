"""LLaVA-1.5 image preprocessing: our size limits and RGB conversion, then transformers' own pipeline.

"pad" mode as the released MQT-LLaVA does it: pad to a centred square filled with the mean colour
(`int(mean * 255)` per channel), resize the shortest side (PIL bicubic), centre-crop, rescale by
1/255, normalise with the CLIP mean/std. That is transformers' `LlavaImageProcessorPil` with
`do_pad=True`; "crop" mode (no padding) is `CLIPImageProcessorPil`. Both need no torchvision and give
pixel values bit-identical to the original code's (tests/test_hf_conventions.py checks wide, tall,
odd-sized, RGBA and grey images against our own step-by-step reference). Before them,
`images.load_image` decodes the image within the size limits (pixels, long side, side ratio: the
padded canvas follows the long side) and converts any mode to RGB (alpha over white, 16-bit grey
scaled).

The saved settings (`crop_size`, `shortest_edge`, `image_mean`, `image_std`, `image_aspect_ratio`,
`resample`, `max_pixels`, ...) are the ones folders written before used, so they all still load.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

from mqt_vlm.errors import MQTError
from mqt_vlm.processing.images import (
    DEFAULT_MAX_ASPECT_RATIO,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SIDE,
    ImageSource,
    load_image,
)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def expand_to_square(image: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
    """Pad to a square with the image centred (offset rounded down), as LLaVA's expand2square."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


@lru_cache(maxsize=16)
def _transformers_processor(pad: bool, shortest_edge: int, crop_size: int, mean: tuple[float, ...],
                            std: tuple[float, ...], resample: str) -> Any:
    """transformers' PIL image processor for these settings (built once per setting)."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    settings = dict(size={"shortest_edge": shortest_edge}, crop_size={"height": crop_size, "width": crop_size},
                    image_mean=list(mean), image_std=list(std), resample=_RESAMPLE[resample], do_convert_rgb=False)
    return LlavaImageProcessorPil(do_pad=True, **settings) if pad else CLIPImageProcessorPil(**settings)


class MQTImageProcessor(BaseImageProcessor):
    """Images -> `pixel_values` [B, 3, crop, crop] float32. A `BaseImageProcessor` (what
    `AutoImageProcessor` registers) whose settings and `preprocess` are its own."""

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        crop_size: int = 336,
        shortest_edge: int | None = None,
        image_mean: Sequence[float] = CLIP_MEAN,
        image_std: Sequence[float] = CLIP_STD,
        image_aspect_ratio: str = "pad",
        resample: str = "bicubic",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_side: int = DEFAULT_MAX_SIDE,
        max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("image_processor_type", None)
        super().__init__(**kwargs)
        if image_aspect_ratio not in ("pad", "crop"):
            raise MQTError(f"image_aspect_ratio must be 'pad' or 'crop', got {image_aspect_ratio!r}.")
        if resample not in _RESAMPLE:
            raise MQTError(f"resample must be one of {sorted(_RESAMPLE)}, got {resample!r}.")
        if len(image_mean) != 3 or len(image_std) != 3:
            raise MQTError("image_mean and image_std need three values (RGB).")
        self.crop_size = int(crop_size)
        self.shortest_edge = int(shortest_edge or crop_size)
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        self.image_aspect_ratio = image_aspect_ratio
        self.resample = resample
        self.max_pixels = int(max_pixels)
        self.max_side = int(max_side)
        self.max_aspect_ratio = float(max_aspect_ratio)

    @property
    def fill_color(self) -> tuple[int, int, int]:
        r, g, b = (int(v * 255) for v in self.image_mean)
        return (r, g, b)

    def _resize_shortest(self, image: Image.Image) -> Image.Image:
        """The resize step alone (the server pre-pads and resizes off the model's thread): the same
        size rule and PIL call as transformers' resize, and a no-op at the target size, so running
        the whole pipeline on its output changes nothing."""
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.shortest_edge, int(self.shortest_edge * long / short)
        size = (new_short, new_long) if width <= height else (new_long, new_short)  # (w, h)
        if size == image.size:
            return image
        return image.resize(size, resample=_RESAMPLE[self.resample])

    def _pipeline(self) -> Any:
        return _transformers_processor(self.image_aspect_ratio == "pad", self.shortest_edge, self.crop_size,
                                       tuple(self.image_mean), tuple(self.image_std), self.resample)

    def load(self, image: ImageSource) -> Image.Image:
        """Decode within this processor's size limits, as RGB."""
        return load_image(image, max_pixels=self.max_pixels, max_side=self.max_side, max_aspect_ratio=self.max_aspect_ratio)

    def preprocess_one(self, image: ImageSource) -> np.ndarray:
        """One image -> float32 array [3, crop, crop]."""
        return self._pipeline()(self.load(image), return_tensors="np")["pixel_values"][0]

    def preprocess(self, images: ImageSource | Sequence[ImageSource], return_tensors: str | None = "pt",
                   **kwargs: Any) -> BatchFeature:
        if kwargs:
            raise MQTError(f"MQTImageProcessor got unexpected arguments {sorted(kwargs)}; its settings are fixed "
                           "when it is built (crop_size, image_aspect_ratio, ...).")
        if return_tensors not in ("pt", "np", None):
            raise MQTError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}.")
        batch = list(images) if isinstance(images, (list, tuple)) else [images]
        if not batch:
            raise MQTError("No images given.")
        pixels = self._pipeline()([self.load(image) for image in batch], return_tensors="np")["pixel_values"]
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)  # [B, 3, H, W]
        return BatchFeature(data={"pixel_values": torch.from_numpy(pixels) if return_tensors == "pt" else pixels})

    __call__ = preprocess
