"""`image_url` -> decoded RGB image, within the server's limits.

By default only base64 `data:` URLs are accepted: a server that fetches URLs or opens paths named
by clients can be turned against its own network or file system. `allow_remote_images` opts into
both (http(s) fetches with a byte cap and a time-out; local files with a size cap), for trusted
clients only. Every failure is a 400 that says what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from PIL import Image

from mqt_vlm.errors import MQTError
from mqt_vlm.processing.images import load_image
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


def decode_image(data: bytes, config: ServeConfig, param: str) -> Image.Image:
    """Decode bytes with the pixel limit; runs in a worker thread (decoding is CPU work)."""
    try:
        return load_image(data, max_pixels=config.max_image_pixels, name=param)
    except MQTError as exc:
        code = "image_too_large" if "pixels" in str(exc) and "limit" in str(exc) else "invalid_image"
        raise APIError(400, str(exc), code=code, param=param) from None


async def fetch_remote(url: str, config: ServeConfig, param: str) -> bytes:
    """GET an http(s) image with a byte cap and a time-out (only with allow_remote_images)."""
    import httpx

    try:
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
    except httpx.HTTPError as exc:
        raise APIError(400, f"Fetching the image failed: {type(exc).__name__}.", code="image_fetch_failed",
                       param=param) from None


def read_local(url: str, config: ServeConfig, param: str) -> bytes:
    """Read a `file://` URL or a path (only with allow_remote_images)."""
    path = Path(unquote(urlparse(url).path) if url.startswith("file://") else url)
    if not path.is_file():
        raise APIError(400, f"No image file at {str(path)!r}.", code="invalid_image_url", param=param)
    if path.stat().st_size > config.max_image_bytes:
        raise APIError(413, f"The image file is larger than {config.max_image_bytes:,} bytes.", code="image_too_large",
                       param=param)
    return path.read_bytes()


async def image_bytes(url: str, config: ServeConfig, param: str) -> bytes:
    """Bytes of any accepted `image_url` (data URL always; http(s)/file/path only when allowed)."""
    if url[:5].lower() == "data:":
        return decode_data_url(url, config.max_image_bytes, param)
    scheme = urlparse(url).scheme.lower()
    remote = scheme in ("http", "https")
    local = scheme == "file" or url.startswith(("/", "./", "../", "~")) or (scheme == "" and "." in url)
    if not (remote or local):
        raise APIError(400, f"Unsupported image URL scheme {scheme or url[:16]!r}; send a base64 data URL.",
                       code="invalid_image_url", param=param)
    if not config.allow_remote_images:
        what = "Remote image URLs" if remote else "Local image paths"
        raise APIError(400, f"{what} are disabled on this server; send the image as a base64 data URL "
                            "(data:image/png;base64,...), or start the server with --allow-remote-images.",
                       code="remote_images_disabled", param=param)
    if remote:
        return await fetch_remote(url, config, param)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(read_local, url, config, param)
