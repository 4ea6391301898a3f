"""vLLM's offline engine (`vllm.LLM`) on a tiny MQT model against our Hugging Face path.

Greedy tokens must be equal to `generate_batch` (one mixed-budget batch, m = 1, 4, 16), prompt ids
equal to the released tokenization with m image tokens per image, per-image budgets must act per
image (even for two copies of one picture), and bad budgets must be refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

# a submodule, so that only a real vLLM install satisfies it
pytest.importorskip("vllm.entrypoints.llm", reason="vLLM is not installed here; `make test-vllm` builds .venv-vllm and runs these")

import torch  # noqa: E402
from conftest import KV_CACHE_BYTES  # noqa: E402
from PIL import Image  # noqa: E402

from mqt_vlm.inference.batch import generate_batch  # noqa: E402
from mqt_vlm.inference.params import GenerationRequest, SamplingParams  # noqa: E402
from mqt_vlm.vllm import engine_kwargs  # noqa: E402

pytestmark = pytest.mark.slow
MAX_TOKENS = 12
QUESTION = "What is in the image?"


@pytest.fixture(scope="module")
def llm(tiny_vllm_dir: Path):
    from vllm import LLM

    engine = LLM(**engine_kwargs(
        str(tiny_vllm_dir), dtype="float32", enforce_eager=True, max_model_len=512, max_num_seqs=8,
        limit_mm_per_prompt={"image": 2}, kv_cache_memory_bytes=KV_CACHE_BYTES, seed=0,
    ))
    yield engine
    engine.llm_engine.engine_core.shutdown()


def _greedy() -> Any:
    from vllm import SamplingParams as VllmSamplingParams

    return VllmSamplingParams(temperature=0.0, max_tokens=MAX_TOKENS)


def _request(prompt: str, images: list[Image.Image], budget: object = None) -> dict[str, Any]:
    request: dict[str, Any] = {"prompt": prompt, "multi_modal_data": {"image": images[0] if len(images) == 1 else images}}
    if budget is not None:
        request["mm_processor_kwargs"] = {"num_visual_tokens": budget}
    return request


def _strip_eos(ids: list[int], eos: int) -> list[int]:
    return ids[:-1] if ids and ids[-1] == eos else ids


def test_mixed_budget_batch_equals_hf_greedy(llm, hf_model, photos) -> None:
    model, processor = hf_model
    prompt = processor.format_prompt(QUESTION)
    cases = [(photos["astronaut"], 1), (photos["chelsea"], 4), (photos["coffee"], 16), (photos["astronaut"], 16)]
    outputs = llm.generate([_request(prompt, [image], m) for image, m in cases], _greedy())
    expected = generate_batch(model, processor, [
        GenerationRequest(prompt, [image], m, SamplingParams(max_new_tokens=MAX_TOKENS)) for image, m in cases
    ])
    eos = processor.tokenizer.eos_token_id
    got = [_strip_eos(list(o.outputs[0].token_ids), eos) for o in outputs]
    want = [_strip_eos(list(r.token_ids), eos) for r in expected]
    assert got == want
    assert len({tuple(ids) for ids in got}) > 1  # the budgets and images change the answer
    for output, (_, m), result in zip(outputs, cases, expected):
        assert list(output.prompt_token_ids) == processor.tokenize_prompt(prompt, m)  # released ids, m image tokens
        assert len(output.prompt_token_ids) == result.prompt_tokens  # usage counts the visual tokens


def test_default_budget_is_the_models(llm, hf_model, photos) -> None:
    model, processor = hf_model
    prompt = processor.format_prompt(QUESTION)
    default = model.config.default_num_visual_tokens
    assert default == 8 != model.num_queries
    output = llm.generate([_request(prompt, [photos["chelsea"]])], _greedy())[0]
    assert list(output.prompt_token_ids) == processor.tokenize_prompt(prompt, default)


def _hf_greedy(model: Any, processor: Any, prompt: str, images: list[Image.Image], budgets: list[int]) -> list[int]:
    inputs = processor(images=images, text=prompt, num_visual_tokens=budgets)
    with torch.no_grad():
        out = model.generate(**inputs, num_visual_tokens=budgets, max_new_tokens=MAX_TOKENS, do_sample=False,
                             pad_token_id=processor.tokenizer.pad_token_id)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


@pytest.mark.parametrize("pair", ["two pictures", "one picture twice"])
def test_per_image_budgets(llm, hf_model, photos, pair: str) -> None:
    """Two images in one request at budgets [2, 16]; "one picture twice" would get one cache entry
    for both if vLLM keyed an image by content and request kwargs only."""
    model, processor = hf_model
    images = [photos["astronaut"], photos["coffee"] if pair == "two pictures" else photos["astronaut"]]
    prompt = processor.format_prompt(f"{processor.image_token}\nCompare the two images.")
    budgets = [2, 16]
    output = llm.generate([_request(prompt, images, budgets)], _greedy())[0]
    assert list(output.prompt_token_ids) == processor.tokenize_prompt(prompt, budgets)
    eos = processor.tokenizer.eos_token_id
    assert _strip_eos(list(output.outputs[0].token_ids), eos) == _strip_eos(_hf_greedy(model, processor, prompt, images, budgets), eos)


def test_cached_image_at_a_new_budget(llm, hf_model, photos) -> None:
    """An image seen at m = 4 and then asked at m = 16 must not reuse the 4-token encoding."""
    model, processor = hf_model
    prompt = processor.format_prompt(QUESTION)
    first, second = (llm.generate([_request(prompt, [photos["camera"]], m)], _greedy())[0] for m in (4, 16))
    assert len(second.prompt_token_ids) - len(first.prompt_token_ids) == 12
    eos = processor.tokenizer.eos_token_id
    assert _strip_eos(list(second.outputs[0].token_ids), eos) == _strip_eos(
        _hf_greedy(model, processor, prompt, [photos["camera"]], [16]), eos)


@pytest.mark.parametrize(("budget", "message"), [
    (0, "must be in 1..16"),
    (17, "must be in 1..16"),
    ("x", "must be an int in 1..16"),
    ([4, 4], "2 budgets but the request has 1 image"),
])
def test_bad_budgets_are_refused(llm, hf_model, photos, budget: object, message: str) -> None:
    _, processor = hf_model
    with pytest.raises(ValueError, match=message):
        llm.generate([_request(processor.format_prompt(QUESTION), [photos["chelsea"]], budget)], _greedy())


def test_unknown_processor_kwarg_is_refused(llm, hf_model, photos) -> None:
    _, processor = hf_model
    request = _request(processor.format_prompt(QUESTION), [photos["chelsea"]])
    request["mm_processor_kwargs"] = {"num_visual_token": 4}
    with pytest.raises(ValueError, match="Unknown mm_processor_kwargs"):
        llm.generate([request], _greedy())
