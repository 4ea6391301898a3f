"""LLaVA-1.5 image preprocessing without torchvision.

"pad" mode as the released MQT-LLaVA does it: pad to a centred square filled with the mean colour
(`int(mean * 255)` per channel), resize the shortest side (PIL bicubic), centre-crop, rescale by
1/255, normalise with the CLIP mean/std. Each step matches CLIPImageProcessor's PIL path, so pixel
values agree with the original code to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_base import BatchFeature, ImageProcessingMixin

from mqt_vlm.errors import MQTError
from mqt_vlm.processing.images import DEFAULT_MAX_PIXELS, ImageSource, load_image

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


class MQTImageProcessor(ImageProcessingMixin):
    """Images -> `pixel_values` [B, 3, crop, crop] float32."""

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

    @property
    def fill_color(self) -> tuple[int, int, int]:
        r, g, b = (int(v * 255) for v in self.image_mean)
        return (r, g, b)

    def _resize_shortest(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.shortest_edge, int(self.shortest_edge * long / short)
        size = (new_short, new_long) if width <= height else (new_long, new_short)  # (w, h)
        if size == image.size:
            return image
        return image.resize(size, resample=_RESAMPLE[self.resample])

    def _center_crop(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        crop = self.crop_size
        top, left = (height - crop) // 2, (width - crop) // 2
        if (top, left) == (0, 0) and (width, height) == (crop, crop):
            return image
        return image.crop((left, top, left + crop, top + crop))  # PIL pads with black if needed

    def preprocess_one(self, image: ImageSource) -> np.ndarray:
        """One image -> float32 array [3, crop, crop]."""
        rgb = load_image(image, max_pixels=self.max_pixels)
        if self.image_aspect_ratio == "pad":
            rgb = expand_to_square(rgb, self.fill_color)
        rgb = self._center_crop(self._resize_shortest(rgb))
        array = (np.asarray(rgb, dtype=np.float64) * (1 / 255)).astype(np.float32)  # [H, W, 3]
        mean = np.asarray(self.image_mean, dtype=np.float32)
        std = np.asarray(self.image_std, dtype=np.float32)
        return ((array - mean) / std).transpose(2, 0, 1)  # [3, H, W]

    def preprocess(self, images: ImageSource | Sequence[ImageSource], return_tensors: str | None = "pt") -> BatchFeature:
        batch = list(images) if isinstance(images, (list, tuple)) else [images]
        if not batch:
            raise MQTError("No images given.")
        pixels = np.stack([self.preprocess_one(image) for image in batch])  # [B, 3, H, W]
        data = {"pixel_values": torch.from_numpy(pixels) if return_tensors == "pt" else pixels}
        return BatchFeature(data=data)

    __call__ = preprocess
