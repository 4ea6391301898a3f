"""The encode-once cache: exact prefix reuse, skipping the vision tower, keys, LRU bytes, threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from mqt_vlm.errors import MQTError
from mqt_vlm.inference import GenerationRequest, SamplingParams, VisualTokenCache, encode_images, generate_batch
from mqt_vlm.inference.cache import image_digest


class TowerCalls:
    """Counts vision-tower forward passes through a forward hook."""

    def __init__(self, model):
        self.count = 0
        self.handle = model.vision_tower.embeddings.register_forward_hook(self._hook)  # once per tower pass

    def _hook(self, module, args, output):
        self.count += args[0].shape[0]

    def close(self):
        self.handle.remove()


def test_cached_tokens_are_exactly_the_encoding_at_every_budget(tiny_model, photos):
    model, processor = tiny_model
    cache = VisualTokenCache()
    first = encode_images(model, processor, [photos["coffee"]], cache)
    second = encode_images(model, processor, [photos["coffee"]], cache)
    assert first.from_cache == [False] and second.from_cache == [True]
    assert torch.equal(first.visual, second.visual) and first.visual.shape == (1, 16, 64)
    with torch.no_grad():
        direct = model.encode_images(processor.image_processor([photos["coffee"]])["pixel_values"])
    assert torch.equal(second.visual, direct)
    batch = processor(images=photos["coffee"], text=processor.format_prompt("q"), num_visual_tokens=5)
    with torch.no_grad():
        from_pixels = model.embed_inputs(batch["input_ids"], batch["pixel_values"], 5)
        from_cache = model.embed_inputs(batch["input_ids"], None, 5, visual_embeds=second.visual)
    assert torch.equal(from_pixels, from_cache)


def test_a_cached_image_skips_the_vision_tower_at_any_budget(tiny_model, photos):
    model, processor = tiny_model
    cache = VisualTokenCache()
    calls = TowerCalls(model)
    try:
        prompt = processor.format_prompt("What is this?")
        params = SamplingParams(max_new_tokens=3)
        generate_batch(model, processor, [GenerationRequest(prompt, [photos["astronaut"]], 16, params)], cache)
        assert calls.count == 1
        for m in (1, 4, 9):
            generate_batch(model, processor, [GenerationRequest(prompt, [photos["astronaut"]], m, params)], cache)
        # a batch repeating one image plus a new one encodes only the new one, once
        generate_batch(model, processor, [GenerationRequest(prompt, [photos["astronaut"]], 2, params),
                                          GenerationRequest(prompt, [photos["chelsea"]], 2, params),
                                          GenerationRequest(prompt, [photos["chelsea"]], 3, params)], cache)
        assert calls.count == 2
    finally:
        calls.close()
    stats = cache.stats()
    assert (stats.entries, stats.hits, stats.misses) == (2, 4, 2)


def test_keys_follow_content_and_model(tiny_model, llama_tokenizer_dir, photos):
    model, processor = tiny_model
    image = photos["coffee"]
    assert image_digest(image) == image_digest(image.copy())
    changed = np.asarray(image).copy()
    changed[0, 0, 0] ^= 1
    assert image_digest(Image.fromarray(changed)) != image_digest(image)
    cache = VisualTokenCache()
    from mqt_vlm.modeling.builder import build_from_preset

    torch.manual_seed(1)
    other, other_processor = build_from_preset("tiny", str(llama_tokenizer_dir))
    assert cache.model_key(model, processor) != cache.model_key(other.eval(), other_processor)
    a = encode_images(model, processor, [image], cache)
    b = encode_images(other, other_processor, [image], cache)
    assert b.from_cache == [False] and not torch.equal(a.visual, b.visual)


def test_lru_is_bounded_in_bytes():
    one = torch.zeros(16, 64)  # 4096 bytes
    cache = VisualTokenCache(max_bytes=3 * 4096)
    for i in range(3):
        cache.put(("m", str(i)), one + i)
    assert cache.get(("m", "0")) is not None  # 0 is now the most recent
    cache.put(("m", "3"), one + 3)
    assert cache.get(("m", "1")) is None and cache.get(("m", "0")) is not None
    stats = cache.stats()
    assert stats.entries == 3 and stats.bytes == 3 * 4096 and stats.evictions == 1
    cache.put(("m", "big"), torch.zeros(1000, 64))  # larger than the whole cache: not stored
    assert cache.get(("m", "big")) is None and cache.stats().bytes <= 3 * 4096
    view = torch.zeros(100, 16, 64)[0]
    cache.put(("m", "view"), view)
    assert cache.get(("m", "view")).untyped_storage().nbytes() == 4096  # a copy, not the whole batch
    with pytest.raises(MQTError):
        VisualTokenCache(max_bytes=-1)


def test_concurrent_use_keeps_counts_and_bytes_consistent():
    cache = VisualTokenCache(max_bytes=40 * 1024)
    errors = []

    def work(worker: int) -> None:
        try:
            for i in range(200):
                key = ("m", str((worker * 7 + i) % 25))
                if cache.get(key) is None:
                    cache.put(key, torch.full((4, 64), float(i)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = cache.stats()
    assert not errors
    assert stats.hits + stats.misses == 8 * 200
    assert stats.bytes == stats.entries * 4 * 64 * 4 <= 40 * 1024
