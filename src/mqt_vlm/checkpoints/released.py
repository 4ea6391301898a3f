"""Import of released MQT-LLaVA checkpoints (DESIGN.md section 3) into the `mqt_vlm` format.

Released layout: `config.json` (LLaMA fields + `mm_*` fields, `model_type: llava_llama`), bf16
safetensors (single or sharded with an index), tensors `model.*` / `lm_head.weight` for the LLM,
`model.query_abstractor.*` for the query transformer, and possibly the CLIP tower under
`model.vision_tower.vision_tower.vision_model.*`. Stage 1 writes `query_abstractor.bin` (a torch
pickle: loaded with `weights_only=True` only).

Tensors are streamed one file at a time into a model built without initialisation, so a 7B import
needs the model's memory plus one shard, not twice the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from transformers import CLIPVisionConfig, LlamaConfig

from mqt_vlm.errors import MQTError

MQT_PREFIX = "model.query_abstractor."
TOWER_PREFIX = "model.vision_tower.vision_tower.vision_model."
# config keys of the LLaVA fork that are not LLaMA fields
_LLAVA_KEYS = re.compile(r"^(mm_|tune_|freeze_|use_mm_proj|image_aspect_ratio|query_abstractor|num_visual_tokens|"
                         r"image_grid_pinpoints|unfreeze_|architectures|model_type|_name_or_path|transformers_version)")


def map_key(key: str) -> str | None:
    """Released tensor name -> our name; None for names we do not know."""
    if key.startswith(MQT_PREFIX):
        return "mqt." + key[len(MQT_PREFIX) :]
    if key.startswith(TOWER_PREFIX):
        return "vision_tower." + key[len(TOWER_PREFIX) :]
    if key == "lm_head.weight":
        return "language_model.lm_head.weight"
    if key.startswith("model.") and not key.startswith(("model.vision_tower.", "model.mm_projector.")):
        return "language_model." + key
    return None


QUERY_TRANSFORMER_PREFIXES = (MQT_PREFIX, "query_abstractor.", "model.mqt.", "mqt.")


def read_query_transformer_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Query-transformer tensors of a stage-1 `query_abstractor.bin` (pickle, opened with
    `weights_only=True` only) or a .safetensors file, with the prefix stripped (`query`, `attn.*`...)."""
    path = Path(path)
    if not path.is_file():
        raise MQTError(f"Query-transformer weights {path} not found.")
    if path.suffix == ".safetensors":
        raw: object = dict(_iter_safetensors(path))
    else:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickles that need code execution are refused here
            raise MQTError(f"Could not load {path} with weights_only=True ({exc}); only plain tensors are accepted.") from exc
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise MQTError(f"{path} does not hold a dict of tensors.")
    state: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        prefix = next((p for p in QUERY_TRANSFORMER_PREFIXES if key.startswith(p)), "")
        state[key[len(prefix) :]] = value
    if "query" not in state:
        raise MQTError(f"{path} holds no query-transformer tensors (query_abstractor.* / mqt.*); is it the right file?")
    return state


def load_query_abstractor(path: str | Path) -> dict[str, torch.Tensor]:
    """A stage-1 `query_abstractor.bin` (or .safetensors) -> `{mqt.<name>: tensor}`."""
    return {"mqt." + name: value for name, value in read_query_transformer_state(path).items()}


def _iter_safetensors(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():
            yield key, handle.get_tensor(key)


def weight_files(src: Path) -> list[Path]:
    """The checkpoint's weight files: sharded (index json) or single, safetensors preferred."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = src / index_name
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            missing = [s for s in shards if not (src / s).is_file()]
            if missing:
                raise MQTError(f"{index} lists shards that are missing: {missing}.")
            return [src / s for s in shards]
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (src / single).is_file():
            return [src / single]
    raise MQTError(f"No weights in {src}: expected model.safetensors (or shards with an index json).")


def iter_tensors(files: list[Path]) -> Iterator[tuple[str, torch.Tensor]]:
    for path in files:
        if path.suffix == ".safetensors":
            yield from _iter_safetensors(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            yield from state.items()


def text_config_from_released(raw: dict[str, Any]) -> LlamaConfig:
    fields = {k: v for k, v in raw.items() if not _LLAVA_KEYS.match(k)}
    return LlamaConfig(**fields)


def clip_config_from_tensors(shapes: dict[str, tuple[int, ...]]) -> CLIPVisionConfig:
    """Infer a CLIP tower config from tensor shapes (heads assume CLIP's head width of 64)."""
    def shape(name: str) -> tuple[int, ...]:
        return shapes[TOWER_PREFIX + name]

    hidden = shape("embeddings.class_embedding")[0]
    patch = shape("embeddings.patch_embedding.weight")[-1]
    grid = int(round((shape("embeddings.position_embedding.weight")[0] - 1) ** 0.5))
    layers = 1 + max(int(m.group(1)) for k in shapes if (m := re.match(re.escape(TOWER_PREFIX) + r"encoder\.layers\.(\d+)\.", k)))
    return CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=shape("encoder.layers.0.mlp.fc1.weight")[0],
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        image_size=grid * patch,
        patch_size=patch,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )


def _budget_default(raw: dict[str, Any], num_queries: int) -> int:
    """`num_visual_tokens` may be an int or "first_stage"/"second_stage" (both mean M at inference:
    the released "second_stage" draws a random m per call, which we never do outside training)."""
    value = raw.get("num_visual_tokens", num_queries)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= num_queries:
        return value
    if value in ("first_stage", "second_stage", None):
        return num_queries
    raise MQTError(f"config num_visual_tokens={value!r} is neither an int in 1..{num_queries} nor a stage name.")
