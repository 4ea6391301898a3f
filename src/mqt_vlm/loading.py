"""Resolve a `--model` argument to (model, processor): an `mqt_vlm` folder, or `builtin:NAME` for
a model shipped inside the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import torch

from mqt_vlm.errors import MQTError

BUILTIN_PREFIX = "builtin:"


def builtin_dir(name: str) -> Path:
    """Folder of a model shipped in `mqt_vlm/builtin/NAME`."""
    folder = Path(str(resources.files("mqt_vlm"))) / "builtin" / name
    if not (folder / "config.json").is_file():
        available = sorted(p.name for p in folder.parent.iterdir() if (p / "config.json").is_file()) if folder.parent.is_dir() else []
        raise MQTError(
            f"No built-in model {name!r}; available: {', '.join(available) or 'none'}. Built-in models are made by "
            "the CPU reproduction: `make pretrain-lm` builds shapes-base and `make reproduce` (python -m "
            "mqt_vlm.repro --install-builtin) trains shapes from it (docs/reproduction.md); any folder written "
            "by `mqt train` or `save_pretrained` works as --model too."
        )
    return folder


def resolve_model_path(model: str | Path) -> Path:
    text = str(model)
    if text.startswith(BUILTIN_PREFIX):
        return builtin_dir(text[len(BUILTIN_PREFIX):])
    path = Path(text)
    if not (path / "config.json").is_file():
        raise MQTError(
            f"{text} is not an mqt_vlm model folder (no config.json). Use a folder written by "
            "`save_pretrained`/`mqt convert`/`mqt train`, or builtin:shapes."
        )
    return path


def load_model(model: str | Path, dtype: str | torch.dtype | None = None, device: str | None = None) -> tuple[Any, Any]:
    """(MQTForConditionalGeneration in eval mode, MQTProcessor) from a folder or `builtin:NAME`."""
    from mqt_vlm.modeling.auto import register
    from mqt_vlm.modeling.modeling import MQTForConditionalGeneration
    from mqt_vlm.processing.processor import MQTProcessor

    register()
    path = resolve_model_path(model)
    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    loaded = MQTForConditionalGeneration.from_pretrained(path, **kwargs).eval()
    if device:
        loaded.to(device)
    return loaded, MQTProcessor.from_pretrained(path)
