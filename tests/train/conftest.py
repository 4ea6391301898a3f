"""Shared fixtures for the training tests: the offline LLaMA tokenizer, a tiny processor, and the
real-photo dataset (scikit-image sample photos with hand-written captions and questions)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private MQT_CACHE so tests never depend on (or write to) the user's cache."""
    folder = tmp_path_factory.mktemp("mqt-cache")
    os.environ["MQT_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def tiny(cache_dir: Path):
    """(model, processor) of the tiny preset with the offline LLaMA tokenizer."""
    from mqt_vlm.data.encode import OFFLINE_LLAMA_TOKENIZER, tokenizer_source
    from mqt_vlm.modeling.builder import build_from_preset

    return build_from_preset("tiny", tokenizer_source(OFFLINE_LLAMA_TOKENIZER))


@pytest.fixture(scope="session")
def processor(tiny):
    return tiny[1]


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mqt_vlm.data.photos import write_photo_dataset

    return write_photo_dataset(tmp_path_factory.mktemp("photos"))


@pytest.fixture()
def one_thread():
    """In-process training on one intra-op thread: on a shared 2-core machine, torch's default thread
    pool oversubscribes the cores and a tiny model's step takes seconds instead of a fraction."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """The tiny preset (fixed seed) saved as an mqt_vlm folder: what stage 2 starts from (--init-from)
    in the multi-process tests, standing in for a stage-1 output without a stage-1 run."""
    import torch

    from mqt_vlm.data.encode import OFFLINE_LLAMA_TOKENIZER, tokenizer_source
    from mqt_vlm.modeling.builder import build_from_preset

    torch.manual_seed(0)
    model, processor = build_from_preset("tiny", tokenizer_source(OFFLINE_LLAMA_TOKENIZER))
    folder = tmp_path_factory.mktemp("tiny-folder")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
