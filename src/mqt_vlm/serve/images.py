"""`image_url` -> decoded RGB image, within the server's limits.

By default only base64 `data:` URLs are accepted: a server that fetches URLs or opens paths named
by clients can be turned against its own network or file system. `allow_remote_images` opts into
both (http(s) fetches with a byte cap and a deadline on the whole fetch; regular local files with
a size cap), for trusted clients only. Every failure is a 4xx that says what was wrong, except that
every local path that cannot be read as an image gets the same message, so that the server does not
tell clients which paths exist.

Everything expensive happens here, off the model's thread: base64 and image decoding, and the
LLaVA padding to a long-side square plus the resize (`prepad`), whose cost follows the long side,
not w x h. The size limits (pixels, long side, side ratio) are checked from the image header first.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import os
import re
import stat
from typing import Any
from urllib.parse import unquote, urlparse

from PIL import Image

from mqt_vlm.errors import MQTError
from mqt_vlm.processing.image_processor import MQTImageProcessor, expand_to_square
from mqt_vlm.processing.images import check_image_size, load_image
from mqt_vlm.serve.config import ServeConfig
from mqt_vlm.serve.errors import APIError

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,", re.I)
_WHITESPACE = re.compile(rb"\s+")


def decode_data_url(url: str, max_bytes: int, param: str) -> bytes:
    """The bytes of a `data:image/...;base64,...` URL."""
    match = _DATA_URL.match(url)
    if match is None or not match.group("b64"):
        raise APIError(400, "Image data URLs must look like data:image/png;base64,<base64 data>.",
                       code="invalid_image_url", param=param)
    mime = (match.group("mime") or "").lower()
    if mime and not mime.startswith("image/"):
        raise APIError(400, f"The data URL has media type {mime!r}; send an image (image/png, image/jpeg, ...).",
                       code="invalid_image_url", param=param)
    payload = _WHITESPACE.sub(b"", url[match.end():].encode("ascii", errors="replace"))
    if len(payload) * 3 // 4 > max_bytes:
        raise APIError(413, f"The image is larger than the limit of {max_bytes:,} bytes.", code="image_too_large", param=param)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, "The image data URL is not valid base64.", code="invalid_base64", param=param) from None
    if not data:
        raise APIError(400, "The image data URL is empty.", code="invalid_image", param=param)
    return data


UNREADABLE_PATH = ("Cannot read an image at that path (it does not exist, is not a regular file, is not "
                   "readable, or is not an image).")


def _size_flag(width: int, height: int, config: ServeConfig) -> str:
    if width * height > config.max_image_pixels:
        return "--max-image-pixels"
    return "--max-image-side" if max(width, height) > config.max_image_side else "--max-image-aspect-ratio"


def check_size(data: bytes, config: ServeConfig, param: str) -> None:
    """Refuse an image from its header, before decoding: a 400 naming the limit and its flag."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
    except Exception:  # noqa: BLE001 - not an image, or a bomb PIL refuses to open: load_image says which
        return
    try:
        check_image_size(width, height, "The image", config.max_image_pixels, config.max_image_side,
                         config.max_image_aspect_ratio)
    except MQTError as exc:
        raise APIError(400, f"{exc} This server's limit is set by {_size_flag(width, height, config)}.",
                       code="image_too_large", param=param) from None


def prepad(image: Image.Image, image_processor: Any) -> Image.Image:
    """The image after the processor's padding and resize, which give the same pixel values again.

    LLaVA's "pad" mode pastes the image on a max(w, h)^2 canvas before resizing: a 8192 x 410 image
    costs ~0.7 s and ~270 MB there. Doing it here, in a request's thread, leaves the model's thread
    only the crop and normalisation of a small image. Both steps are idempotent (a square is not
    padded again; an image already at the shortest edge is not resized), so
    `image_processor(prepad(x)) == image_processor(x)` exactly (tested).
    """
    if not isinstance(image_processor, MQTImageProcessor):
        return image
    if image_processor.image_aspect_ratio == "pad":
        image = expand_to_square(image, image_processor.fill_color)
    return image_processor._resize_shortest(image)


def decode_image(data: bytes, config: ServeConfig, param: str, image_processor: Any = None) -> Image.Image:
    """Decode bytes within the size limits and pre-pad; runs in a worker thread (CPU work)."""
    check_size(data, config, param)
    try:
        image = load_image(data, max_pixels=config.max_image_pixels, name="The image", max_side=config.max_image_side,
                           max_aspect_ratio=config.max_image_aspect_ratio)
    except MQTError as exc:
        raise APIError(400, str(exc), code="invalid_image", param=param) from None
    return prepad(image, image_processor)


async def fetch_remote(url: str, config: ServeConfig, param: str) -> bytes:
    """GET an http(s) image with a byte cap and one deadline for the whole fetch (only with
    allow_remote_images): httpx's timeout bounds each read, so a host sending a byte a second
    would otherwise hold the request for as long as it likes. (The request's own time limit
    applies too: `translate` runs this within it.)"""
    import httpx

    async def fetch() -> bytes:
        async with httpx.AsyncClient(timeout=config.remote_timeout_s, follow_redirects=True, max_redirects=3) as client:
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise APIError(400, f"Fetching the image failed with HTTP {response.status_code}.",
                                   code="image_fetch_failed", param=param)
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > config.max_image_bytes:
                        raise APIError(413, f"The image is larger than {config.max_image_bytes:,} bytes.",
                                       code="image_too_large", param=param)
                    chunks.append(chunk)
                return b"".join(chunks)

    try:
        return await asyncio.wait_for(fetch(), timeout=config.remote_timeout_s)
    except TimeoutError:
        raise APIError(400, f"Fetching the image did not finish within {config.remote_timeout_s:g} s "
                            "(--remote-timeout).", code="image_fetch_failed", param=param) from None
    except httpx.HTTPError as exc:
        raise APIError(400, f"Fetching the image failed: {type(exc).__name__}.", code="image_fetch_failed",
                       param=param) from None


def read_local(url: str, config: ServeConfig, param: str) -> bytes:
    """Read a `file://` URL or a path (only with allow_remote_images): regular files only.

    The type is checked before opening (opening a FIFO blocks, opening some devices acts) and again
    on the open file (the path may have changed in between); the read is capped whatever the size
    says (/proc files claim 0 bytes). Every failure gets the same message.
    """
    path = unquote(urlparse(url).path) if url.startswith("file://") else os.path.expanduser(url)
    unreadable = APIError(400, UNREADABLE_PATH, code="invalid_image_url", param=param)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise unreadable
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise unreadable
            data = f.read(config.max_image_bytes + 1)
    except (OSError, ValueError):  # missing, no permission, EIO (/proc/self/mem), a NUL in the path
        raise unreadable from None
    if len(data) > config.max_image_bytes:
        raise APIError(413, f"The image file is larger than {config.max_image_bytes:,} bytes.", code="image_too_large",
                       param=param)
    return data


def _kind(url: str, param: str) -> str:
    """'data', 'remote' or 'local'; a 400 for anything else."""
    if url[:5].lower() == "data:":
        return "data"
    scheme = urlparse(url).scheme.lower()
    if scheme in ("http", "https"):
        return "remote"
    if scheme == "file" or url.startswith(("/", "./", "../", "~")) or (scheme == "" and "." in url):
        return "local"
    raise APIError(400, f"Unsupported image URL scheme {scheme or url[:16]!r}; send a base64 data URL.",
                   code="invalid_image_url", param=param)


def _load_sync(url: str, kind: str, config: ServeConfig, param: str, image_processor: Any) -> Image.Image:
    if kind == "data":
        return decode_image(decode_data_url(url, config.max_image_bytes, param), config, param, image_processor)
    data = read_local(url, config, param)
    try:
        return decode_image(data, config, param, image_processor)
    except APIError as exc:
        if exc.code == "invalid_image":  # an existing file that is not an image: say no more than for a missing one
            raise APIError(400, UNREADABLE_PATH, code="invalid_image_url", param=param) from None
        raise


async def load_request_image(url: str, config: ServeConfig, param: str, image_processor: Any = None) -> Image.Image:
    """Any accepted `image_url` -> a decoded, pre-padded image; the CPU work runs in a thread."""
    from starlette.concurrency import run_in_threadpool

    kind = _kind(url, param)
    if kind != "data" and not config.allow_remote_images:
        what = "Remote image URLs" if kind == "remote" else "Local image paths"
        raise APIError(400, f"{what} are disabled on this server; send the image as a base64 data URL "
                            "(data:image/png;base64,...), or start the server with --allow-remote-images.",
                       code="remote_images_disabled", param=param)
    if kind == "remote":
        data = await fetch_remote(url, config, param)
        return await run_in_threadpool(decode_image, data, config, param, image_processor)
    return await run_in_threadpool(_load_sync, url, kind, config, param, image_processor)
