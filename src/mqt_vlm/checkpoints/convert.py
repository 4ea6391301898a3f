"""`convert_released`: a released MQT-LLaVA folder (or a stage-1 output plus its base LLM) -> an
`mqt_vlm` folder that `MQTForConditionalGeneration.from_pretrained` and `MQTProcessor.from_pretrained`
load. Strict by default: every tensor must find a home and every parameter must be filled."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoModel, AutoTokenizer
from transformers import initialization as hf_init

from mqt_vlm.checkpoints.released import (
    TOWER_PREFIX,
    _budget_default,
    clip_config_from_tensors,
    iter_tensors,
    load_query_abstractor,
    map_key,
    text_config_from_released,
    weight_files,
)
from mqt_vlm.errors import MQTError
from mqt_vlm.loading import parse_dtype
from mqt_vlm.modeling.auto import register
from mqt_vlm.modeling.builder import image_processor_for
from mqt_vlm.modeling.configuration import MQTConfig
from mqt_vlm.modeling.modeling import MQTForConditionalGeneration
from mqt_vlm.processing.processor import MQTProcessor


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _shapes(files: list[Path]) -> dict[str, tuple[tuple[int, ...], torch.dtype | None]]:
    out: dict[str, tuple[tuple[int, ...], torch.dtype | None]] = {}
    for path in files:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as handle:
                for key in handle.keys():
                    out[key] = (tuple(handle.get_slice(key).get_shape()), None)
        else:
            for key, value in torch.load(path, map_location="cpu", weights_only=True).items():
                out[key] = (tuple(value.shape), value.dtype)
    return out


def _list(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(sorted(names)[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def convert_released(
    src: str | Path,
    dst: str | Path,
    vision_tower: str | Path | None = None,
    dtype: str = "auto",
    query_abstractor: str | Path | None = None,
    language_model: str | Path | None = None,
    mqt_heads: int = 16,
    key_source: str = "position",
    strict: bool = True,
) -> Path:
    """Convert and save; returns `dst`.

    `src` is a released MQT-LLaVA folder, or a stage-1 folder (config.json + query_abstractor.bin)
    whose LLM weights come from `language_model`. `vision_tower` (a CLIP folder or hub id) is needed
    when the checkpoint holds no tower tensors; its config also wins over the shape-inferred one.
    """
    register()
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise MQTError(f"{src} is not a folder; pass the checkpoint folder (config.json + weights).")
    llm_dir = Path(language_model) if language_model else src
    config_path = src / "config.json" if (src / "config.json").is_file() else llm_dir / "config.json"
    if not config_path.is_file():
        raise MQTError(f"No config.json in {src} or {llm_dir}.")
    raw = json.loads(config_path.read_text())
    files = weight_files(llm_dir)
    shapes = {k: v[0] for k, v in _shapes(files).items()}

    qa_path = Path(query_abstractor) if query_abstractor else (src / "query_abstractor.bin" if (src / "query_abstractor.bin").is_file() else None)
    qa_tensors = load_query_abstractor(qa_path) if qa_path else {}
    query_shape = qa_tensors["mqt.query"].shape if "mqt.query" in qa_tensors else shapes.get("model.query_abstractor.query")
    if query_shape is None:
        raise MQTError(f"No query-transformer tensors (model.query_abstractor.*) in {src}; pass --query-abstractor.")
    num_queries, width = int(query_shape[0]), int(query_shape[1])

    has_tower = any(k.startswith(TOWER_PREFIX) for k in shapes)
    if vision_tower is not None:
        vision_config = AutoConfig.from_pretrained(vision_tower)
        vision_config = getattr(vision_config, "vision_config", None) or vision_config
    elif has_tower:
        vision_config = clip_config_from_tensors(shapes)
    else:
        raise MQTError(
            f"{src} holds no vision-tower tensors ({TOWER_PREFIX}*) and no --vision-tower was given "
            f"(the checkpoint names {raw.get('mm_vision_tower')!r}); pass a CLIP folder with --vision-tower."
        )
    text_config = text_config_from_released(raw)

    tokenizer = AutoTokenizer.from_pretrained(src if (src / "tokenizer_config.json").is_file() else llm_dir)
    processor = MQTProcessor(
        image_processor_for(vision_tower, vision_config, image_aspect_ratio="pad" if raw.get("image_aspect_ratio", "pad") == "pad" else "crop"),
        tokenizer,
        num_queries=num_queries,
        default_template="vicuna_v1",
    )
    config = MQTConfig(
        vision_config=vision_config.to_dict(),
        text_config=text_config.to_dict(),
        mqt_config={"num_queries": num_queries, "hidden_size": width, "num_heads": mqt_heads, "key_source": key_source},
        vision_feature_layer=int(raw.get("mm_vision_select_layer", -2)),
        vision_feature_select_strategy="default" if raw.get("mm_vision_select_feature", "patch") == "patch" else "full",
        image_token_id=processor.image_token_id,
        default_num_visual_tokens=_budget_default(raw, num_queries),
    )
    torch_dtype = _resolve_dtype(dtype, files)
    with _default_dtype(torch_dtype), hf_init.no_init_weights():
        model = MQTForConditionalGeneration(config)
    model.to(torch_dtype)

    loaded, unexpected = _fill(model, iter_tensors(files), qa_tensors)
    if vision_tower is not None and not has_tower:
        tower = AutoModel.from_pretrained(vision_tower)
        tower = tower.vision_model if hasattr(tower, "vision_model") and not hasattr(tower, "embeddings") else tower
        more, extra = _fill(model, (("vision_tower." + k, v) for k, v in tower.state_dict().items()), {}, mapped=True)
        loaded |= more
        unexpected += extra
    expected = set(model.state_dict().keys())
    tied = set(model.all_tied_weights_keys) if getattr(model.config, "tie_word_embeddings", False) else set()
    persistent_free = {n for n, _ in model.named_buffers() if n not in expected}
    missing = sorted(expected - loaded - tied - persistent_free - {k for k in expected if k.endswith("position_ids")})
    if strict and (missing or unexpected):
        raise MQTError(
            f"Checkpoint {src} does not match the model. Missing tensors: [{_list(missing)}]. "
            f"Unexpected tensors: [{_list(unexpected)}]. Check --vision-tower / --query-abstractor, "
            "or pass --no-strict to convert anyway (missing tensors keep random values)."
        )
    if tied:
        model.tie_weights()
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst)
    processor.save_pretrained(dst)
    report = {"source": str(src), "loaded": len(loaded), "missing": missing, "unexpected": unexpected, "dtype": str(torch_dtype)}
    (dst / "conversion.json").write_text(json.dumps(report, indent=2))
    return dst


def _resolve_dtype(dtype: str, files: list[Path]) -> torch.dtype:
    parsed = parse_dtype(dtype)
    if parsed is not None:
        return parsed
    for _, tensor in iter_tensors(files[:1]):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


@torch.no_grad()
def _fill(
    model: torch.nn.Module,
    tensors: Iterator[tuple[str, torch.Tensor]],
    overrides: dict[str, torch.Tensor],
    mapped: bool = False,
) -> tuple[set[str], list[str]]:
    """Copy tensors into the model one at a time; returns (names filled, source names unplaced)."""
    state = model.state_dict()
    loaded: set[str] = set()
    unexpected: list[str] = []

    def place(target: str, tensor: torch.Tensor, source: str) -> None:
        if target not in state:
            unexpected.append(source)
            return
        if tuple(state[target].shape) != tuple(tensor.shape):
            raise MQTError(f"Tensor {source} has shape {tuple(tensor.shape)} but {target} needs {tuple(state[target].shape)}.")
        state[target].copy_(tensor.to(state[target].dtype))
        loaded.add(target)

    for key, tensor in tensors:
        target = key if mapped else map_key(key)
        if target is None:
            unexpected.append(key)
        elif target not in overrides:
            place(target, tensor, key)
    for key, tensor in overrides.items():
        place(key, tensor, key)
    return loaded, unexpected
