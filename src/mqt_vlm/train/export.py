"""The end product of a stage: a plain mqt_vlm directory that `from_pretrained` loads.

LoRA adapters are merged into the base weights (W + alpha/r * B @ A) on the gathered state dict,
so the export works the same under DDP, FSDP and DeepSpeed ZeRO-3 (where the live modules hold only
shards) and the result needs no PEFT to load. Like checkpoints, the folder is written next to its
destination and renamed into place, so a killed export never leaves a half-written model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

PEFT_PREFIX = "language_model.base_model.model."
EXPORT_INFO = "mqt_training.json"


def merge_lora_state_dict(state: dict[str, torch.Tensor], scaling: float) -> dict[str, torch.Tensor]:
    """Fold `lora_A`/`lora_B` pairs into their base weights and restore the plain parameter names."""
    merged: dict[str, torch.Tensor] = {}
    deltas: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if ".lora_A." in key:
            prefix, rest = key.split(".lora_A.", 1)
            adapter = rest.split(".", 1)[0]
            lora_b = state[f"{prefix}.lora_B.{adapter}.weight"]
            deltas[f"{prefix}.base_layer.weight"] = scaling * (lora_b.float() @ value.float())  # [out, in]
    for key, value in state.items():
        if ".lora_A." in key or ".lora_B." in key:
            continue
        if key in deltas:
            value = (value.float() + deltas[key]).to(value.dtype)
        name = key.replace(".base_layer.", ".")
        if name.startswith(PEFT_PREFIX):
            name = "language_model." + name[len(PEFT_PREFIX) :]
        merged[name] = value
    return merged


def export_model(
    accelerator: Any,
    model: Any,
    processor: Any,
    output: Path,
    info: dict[str, Any],
    lora_scaling: float | None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write `output` (every rank calls this; the main process writes). Returns `output`."""
    output = Path(output)
    state = accelerator.get_state_dict(model)  # a full state dict on the main process, also under ZeRO-3/FSDP
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        if lora_scaling is not None:
            state = merge_lora_state_dict(state, lora_scaling)
            unwrapped.language_model = unwrapped.language_model.unload()  # plain module names again
        state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
        temporary = output.parent / f".tmp-{output.name}"
        shutil.rmtree(temporary, ignore_errors=True)
        unwrapped.config.use_cache = True
        unwrapped.config.dtype = dtype
        unwrapped.save_pretrained(temporary, state_dict=state, safe_serialization=True)
        processor.save_pretrained(temporary)
        (temporary / EXPORT_INFO).write_text(json.dumps(info, indent=2, default=str))
        if output.exists():
            shutil.rmtree(output)
        temporary.rename(output)
    accelerator.wait_for_everyone()
    return output
