"""LLaVA-1.5 image preprocessing through transformers' PIL image processors: bit-identical to the
recipe written out step by step (DESIGN.md section 2) on wide, tall, odd-sized, tiny, RGBA and grey
images in both modes; our size limits applied first; old saved settings still load."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from mqt_vlm.errors import MQTError
from mqt_vlm.processing.image_processor import MQTImageProcessor


def llava_reference(image: Image.Image, crop: int, pad: bool) -> np.ndarray:
    """LLaVA-1.5's preprocessing step by step (DESIGN.md section 2), in PIL and numpy."""
    mean, std = np.array([0.48145466, 0.4578275, 0.40821073]), np.array([0.26862954, 0.26130258, 0.27577711])
    w, h = image.size
    if pad and w != h:
        side = max(w, h)
        canvas = Image.new("RGB", (side, side), tuple(int(v * 255) for v in mean))
        canvas.paste(image, ((side - w) // 2, (side - h) // 2))
        image, (w, h) = canvas, (side, side)
    short, long = min(w, h), max(w, h)
    size = (crop, int(crop * long / short)) if w <= h else (int(crop * long / short), crop)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    left, top = (image.size[0] - crop) // 2, (image.size[1] - crop) // 2
    image = image.crop((left, top, left + crop, top + crop))
    array = (np.asarray(image, dtype=np.float64) * (1 / 255)).astype(np.float32)
    return ((array - mean.astype(np.float32)) / std.astype(np.float32)).transpose(2, 0, 1)


@pytest.mark.parametrize("mode", ["pad", "crop"])
def test_transformers_image_processors_are_bit_identical_to_llava(mode, photos):
    from mqt_vlm.processing.images import load_image

    rng = np.random.default_rng(0)
    images = {
        "wide photo": photos["astronaut"].resize((512, 300)),
        "tall photo": photos["coffee"].rotate(90, expand=True),
        "odd sizes": Image.fromarray(rng.integers(0, 256, (101, 333, 3), dtype=np.uint8)),
        "tiny": Image.fromarray(rng.integers(0, 256, (9, 17, 3), dtype=np.uint8)),
        "rgba": Image.fromarray(rng.integers(0, 256, (120, 80, 4), dtype=np.uint8), "RGBA"),
        "grey": photos["camera"].resize((97, 131)),
    }
    for crop in (336, 56):
        processor = MQTImageProcessor(crop_size=crop, image_aspect_ratio=mode)
        got = processor(list(images.values()))["pixel_values"]
        for k, (name, image) in enumerate(images.items()):
            expected = torch.from_numpy(llava_reference(load_image(image), crop, mode == "pad"))
            assert torch.equal(got[k], expected), (name, crop)


def test_size_limits_apply_before_preprocessing(tmp_path):
    long_side = io.BytesIO()
    Image.new("RGB", (1, 20000)).save(long_side, "PNG")
    with pytest.raises(MQTError, match="long side"):
        MQTImageProcessor(crop_size=56)(long_side.getvalue())
    with pytest.raises(MQTError, match="side ratio"):
        MQTImageProcessor(crop_size=56, max_aspect_ratio=3)(Image.new("RGB", (400, 100)))
    with pytest.raises(MQTError, match="pixels"):
        MQTImageProcessor(crop_size=56, max_pixels=1000)(Image.new("RGB", (40, 40)))
    relaxed = MQTImageProcessor(crop_size=56, max_side=30000, max_aspect_ratio=30000)
    assert relaxed(long_side.getvalue())["pixel_values"].shape == (1, 3, 56, 56)
    relaxed.save_pretrained(tmp_path)
    assert MQTImageProcessor.from_pretrained(tmp_path).max_side == 30000


def test_old_preprocessor_configs_still_load(tmp_path, photos):
    old = {"crop_size": 56, "shortest_edge": 64, "image_aspect_ratio": "pad", "image_mean": [0.5, 0.5, 0.5],
           "image_std": [0.25, 0.25, 0.25], "image_processor_type": "MQTImageProcessor", "max_pixels": 40000000,
           "resample": "bicubic"}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(old))
    loaded = MQTImageProcessor.from_pretrained(tmp_path)
    assert loaded.shortest_edge == 64 and loaded.fill_color == (127, 127, 127)
    got = loaded(photos["chelsea"])["pixel_values"][0]
    reference = MQTImageProcessor(crop_size=56, shortest_edge=64, image_mean=[0.5] * 3, image_std=[0.25] * 3)
    assert torch.equal(got, reference(photos["chelsea"])["pixel_values"][0])
