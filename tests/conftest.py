"""Shared fixtures: an offline LLaMA tokenizer, a tiny random model, real photos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(1)  # tiny models: one thread is faster than two on a shared 2-core machine


@pytest.fixture(scope="session")
def llama_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mqt_vlm.assets import llama_tokenizer_dir as make

    return make(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def tiny_model(llama_tokenizer_dir: Path):
    """(model, processor): one tiny random model shared by a module's tests (build it once; tests
    must not change it)."""
    from mqt_vlm.modeling.builder import build_from_preset

    torch.manual_seed(0)
    model, processor = build_from_preset("tiny", str(llama_tokenizer_dir))
    return model.eval(), processor


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, llama_tokenizer_dir: Path) -> Path:
    """The tiny random model (M = 16, seed 0) saved once as an mqt_vlm folder, for commands that take
    `--model DIR` (tests must not write into it)."""
    from mqt_vlm.modeling.builder import build_from_preset

    torch.manual_seed(0)
    model, processor = build_from_preset("tiny", str(llama_tokenizer_dir))
    folder = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture()
def tiny(llama_tokenizer_dir: Path):
    """(model, processor): a freshly built tiny random model in eval mode (M = 16, 4x4 patches)."""
    from mqt_vlm.modeling.builder import build_from_preset

    torch.manual_seed(0)
    model, processor = build_from_preset("tiny", str(llama_tokenizer_dir))
    return model.eval(), processor


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    """Real photos from scikit-image, in several sizes and aspect ratios."""
    from skimage import data

    return {
        "astronaut": Image.fromarray(data.astronaut()),
        "chelsea": Image.fromarray(data.chelsea()),
        "coffee": Image.fromarray(data.coffee()),
        "camera": Image.fromarray(data.camera()),  # greyscale
    }


@pytest.fixture()
def random_image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, size=(40, 70, 3), dtype=np.uint8))
