"""The encode-once cache: all M visual tokens of an image, keyed by image content and model.

MQT's output at budget m is exactly the first m rows of its output at M (the prefix property), so
one encoding at M serves every later request for the same image at any budget: the vision tower
and the query transformer run once per image, not once per request. The cache is an LRU bounded in
bytes (one image is an [M, D] tensor: 2 MiB for M = 256, D = 4096 in fp16), safe to share
between threads, and counts hits and misses so the server can report them.

Keys are (model identity, content hash). The model identity is a token minted per model object
plus its config, dtype, device and image-processor settings, so two models never share entries,
even when one is freed and a new one reuses its `id()`. The cache assumes frozen weights: call
`clear()` after changing a model in place.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from mqt_vlm.errors import MQTError


def image_digest(image: Image.Image) -> str:
    """SHA-256 of the decoded pixels (mode, size, bytes): the same picture re-encoded as PNG or
    JPEG-at-the-same-pixels maps to the same key, and any pixel change maps to a new one."""
    h = hashlib.sha256()
    h.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    h.update(image.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    entries: int
    bytes: int
    max_bytes: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class VisualTokenCache:
    """Thread-safe LRU of [M, D] visual-token tensors, bounded by `max_bytes`."""

    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise MQTError(f"max_bytes must be an int >= 0 (0 disables caching), got {max_bytes!r}.")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._lock = threading.Lock()
        self._model_tokens: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    # ---- keys --------------------------------------------------------------------------------
    def model_key(self, model: Any, processor: Any = None) -> str:
        """A key that changes with the model object, its config, dtype, device and preprocessing."""
        with self._lock:
            token = self._model_tokens.get(model)
            if token is None:
                token = uuid.uuid4().hex
                self._model_tokens[model] = token
        parts = [token, str(getattr(model, "dtype", "")), str(getattr(model, "device", ""))]
        config = getattr(model, "config", None)
        if config is not None:
            parts.append(hashlib.sha256(config.to_json_string().encode()).hexdigest()[:16])
        image_processor = getattr(processor, "image_processor", None)
        if image_processor is not None:
            settings = json.dumps(image_processor.to_dict(), sort_keys=True, default=str)
            parts.append(hashlib.sha256(settings.encode()).hexdigest()[:16])
        return "|".join(parts)

    # ---- lookups -----------------------------------------------------------------------------
    def get(self, key: tuple[str, str]) -> torch.Tensor | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return value

    def put(self, key: tuple[str, str], value: torch.Tensor) -> None:
        """Store a copy that owns its memory (a row of a batch tensor would pin the whole batch)."""
        size = value.numel() * value.element_size()
        if size > self.max_bytes:
            return
        value = value.detach().clone()
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.numel() * old.element_size()
            self._entries[key] = value
            self._bytes += size
            while self._bytes > self.max_bytes and self._entries:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.numel() * evicted.element_size()
                self._evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, self._evictions, len(self._entries), self._bytes, self.max_bytes)
