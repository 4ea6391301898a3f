"""Images -> all M visual tokens, through the encode-once cache when one is given.

Only cache misses go through the vision tower and the query transformer, in one batch; repeated
images within a call are encoded once. The result is [I, M, D]; the model takes the first m rows
of each image for its budget, which is bit-exact with encoding at m (the MQT prefix property).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from mqt_vlm.inference.cache import VisualTokenCache, image_digest


@dataclass(frozen=True)
class EncodedImages:
    visual: torch.Tensor  # [I, M, D]
    from_cache: list[bool]  # per image: True when the vision tower was skipped


def encode_images(
    model: Any,
    processor: Any,
    images: Sequence[Image.Image],
    cache: VisualTokenCache | None = None,
) -> EncodedImages:
    """All M visual tokens of each image, [I, M, D], encoding only what the cache lacks."""
    if not images:
        raise ValueError("encode_images needs at least one image.")
    model_key = cache.model_key(model, processor) if cache is not None else ""
    keys = [(model_key, image_digest(image)) for image in images]
    unique = list(dict.fromkeys(keys))  # each distinct image is looked up and encoded once
    found: dict[tuple[str, str], torch.Tensor] = {}
    for key in unique:
        value = cache.get(key) if cache is not None else None
        if value is not None:
            found[key] = value
    hits = set(found)
    missing = [k for k in unique if k not in found]
    if missing:
        first_image = {key: image for key, image in reversed(list(zip(keys, images)))}
        pixel_values = processor.image_processor([first_image[k] for k in missing])["pixel_values"]
        with torch.no_grad():  # not inference_mode: cached tensors may meet autograd later
            encoded = model.encode_images(pixel_values.to(model.device))  # [I_miss, M, D]
        for i, key in enumerate(missing):
            found[key] = encoded[i]
            if cache is not None:
                cache.put(key, encoded[i])
    visual = torch.stack([found[k] for k in keys])  # [I, M, D]
    return EncodedImages(visual=visual, from_cache=[k in hits for k in keys])
