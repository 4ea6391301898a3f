"""Safe image loading: bytes, paths or PIL images in, an RGB PIL image out, or an `MQTError`.

Images come from users and from the network, so every failure mode (empty file, not an image,
truncated data, decompression bombs, exotic modes) becomes an error that says what to do.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mqt_vlm.errors import MQTError

DEFAULT_MAX_PIXELS = 40_000_000  # ~ a 6300 x 6300 photo; far above what a 336 px model needs
# LLaVA-1.5 pads an image to a max(w, h)^2 square before resizing, so the work and memory follow the
# LONG side, not w x h: a 1 x 20000 PNG (a few hundred bytes) becomes a 400-megapixel canvas. Both
# bounds below are checked from the header, before decoding, wherever an image is loaded.
DEFAULT_MAX_SIDE = 8192  # the padded canvas is at most 8192^2 = 67 MP (~200 MB as RGB)
DEFAULT_MAX_ASPECT_RATIO = 20.0  # long side / short side; panoramas are ~4-6
ImageSource = Image.Image | bytes | bytearray | str | os.PathLike | np.ndarray


def check_image_size(width: int, height: int, where: str = "the image", max_pixels: int = DEFAULT_MAX_PIXELS,
                     max_side: int = DEFAULT_MAX_SIDE, max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO) -> None:
    """Refuse sizes whose decoding or padding would cost more than the limits allow (an `MQTError`).

    One rule for every entry point (server, `mqt data check`, training, the processor): pixels
    (w x h), the long side (the padded square canvas is long side squared) and the side ratio.
    """
    if width <= 0 or height <= 0:
        raise MQTError(f"{where} has an empty size {width}x{height}.")
    if width * height > max_pixels:
        raise MQTError(
            f"{where} is {width}x{height} = {width * height:,} pixels, more than the limit of "
            f"{max_pixels:,}; downscale it first (or raise max_pixels if you trust the source)."
        )
    if max(width, height) > max_side:
        raise MQTError(
            f"{where} is {width}x{height}: its long side is over the limit of {max_side:,} pixels (it is padded "
            f"to a {max(width, height):,}-pixel square before resizing); downscale it first (or raise max_side)."
        )
    if max(width, height) > max_aspect_ratio * min(width, height):
        raise MQTError(
            f"{where} is {width}x{height}, a side ratio of {max(width, height) / min(width, height):.1f}:1, over the "
            f"limit of {max_aspect_ratio:g}:1; crop it first (or raise max_aspect_ratio)."
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB without surprises.

    Alpha is composited over white (a transparent pixel's hidden colour is arbitrary), 16-bit and
    32-bit grey images are scaled to 8 bits instead of being clipped at 255 as `convert("RGB")`
    would, and palette images keep their transparency.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0  # 65535 -> 255
        else:
            lo, hi = float(arr.min()), float(arr.max())
            if lo >= 0 and hi <= 255:
                pass
            elif lo >= 0 and hi <= 65535:
                arr = arr / 257.0
            else:
                arr = (arr - lo) / max(hi - lo, 1e-12) * 255.0
        grey = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
        return grey.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("1", "L", "CMYK", "YCbCr", "LAB", "HSV"):
        return image.convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise MQTError(f"Cannot convert an image in mode {mode!r} to RGB: {exc}.") from exc


def load_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None,
               max_side: int = DEFAULT_MAX_SIDE, max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO) -> Image.Image:
    """Open and fully decode an image as RGB, enforcing the size limits (`check_image_size`) before decoding.

    `source` may be a PIL image, raw bytes, a file path, or an HxW / HxWxC uint8 array.
    """
    limits = {"max_pixels": max_pixels, "max_side": max_side, "max_aspect_ratio": max_aspect_ratio}
    where = name or ("the image" if not isinstance(source, (str, os.PathLike)) else f"image {source}")
    if isinstance(source, Image.Image):
        check_image_size(*source.size, where, **limits)
        return _to_rgb(source)
    if isinstance(source, np.ndarray):
        if source.ndim not in (2, 3) or (source.ndim == 3 and source.shape[2] not in (1, 3, 4)):
            raise MQTError(f"{where}: expected an HxW or HxWxC (C in 1, 3, 4) array, got shape {source.shape}.")
        check_image_size(source.shape[1], source.shape[0], where, **limits)
        array = source if source.dtype == np.uint8 else np.clip(source, 0, 255).astype(np.uint8)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        return _to_rgb(Image.fromarray(array))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise MQTError(f"{where} does not exist or is not a file.")
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        raise MQTError(f"Unsupported image input of type {type(source).__name__}; pass a PIL image, bytes or a path.")
    if not data:
        raise MQTError(f"{where} is empty (0 bytes).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            check_image_size(*image.size, where, **limits)
            image.load()
    except MQTError:
        raise
    except UnidentifiedImageError as exc:
        raise MQTError(f"{where} is not a readable image (PNG, JPEG, WebP, ...).") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MQTError(f"{where} looks like a decompression bomb ({exc}); refusing to decode it.") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise MQTError(f"{where} is truncated or corrupt ({exc}); re-export or re-download it.") from exc
    return _to_rgb(image)
