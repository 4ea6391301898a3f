"""A Grad-CAM map drawn over the image the model sees, as a PIL image (no matplotlib needed).

Same picture as `mqt gradcam` (jet colours at 45% over the model's view, the map upsampled
bilinearly), but returned as pixels for a web page instead of a saved figure.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from mqt_vlm.analysis.gradcam import upsample


def jet(values: np.ndarray) -> np.ndarray:
    """[H, W] in [0, 1] -> [H, W, 3] in [0, 1]: the classic jet ramp (blue, cyan, yellow, red)."""
    x = np.clip(values, 0.0, 1.0)[..., None]  # [H, W, 1]
    centres = np.array([0.75, 0.5, 0.25])  # where red, green and blue peak
    return np.clip(1.5 - np.abs(4.0 * (x - centres)), 0.0, 1.0)  # [H, W, 3]


def cam_overlay(view: torch.Tensor, cam: torch.Tensor, size: int = 224, alpha: float = 0.45) -> Image.Image:
    """view [H, W, 3] in [0, 1] (the padded, resized image the model sees), cam [gh, gw] in [0, 1]
    -> a `size` x `size` RGB image. The view is enlarged with nearest-neighbour sampling so that
    small synthetic scenes stay crisp; the map is upsampled bilinearly, as `mqt gradcam` draws it."""
    base = Image.fromarray((view.numpy() * 255).round().astype(np.uint8)).resize((size, size), Image.Resampling.NEAREST)
    heat = upsample(cam, (size, size)).clamp(0, 1).numpy()  # [size, size]
    mixed = (1 - alpha) * np.asarray(base, dtype=np.float64) / 255 + alpha * jet(heat)  # [size, size, 3]
    return Image.fromarray((mixed * 255).round().astype(np.uint8))
