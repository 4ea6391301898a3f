"""The one function that decides what is trainable.

Stage 1 (alignment): the query transformer only, its positional embedding included (the released
stage 1 trains it). Stage 2: the language model and the query transformer, with the positional
embedding frozen, so that the query layout learned in stage 1 stays put. The vision tower is frozen
in both. With LoRA, only the adapter matrices of the language model train, and the query
transformer is still trained in full.

Every parameter name must fall under one of the model's three parts; an unknown name is an error
rather than a silent "frozen", so a new submodule cannot slip past the stage definition.
"""

from __future__ import annotations

from torch import nn

from mqt_vlm.errors import MQTError
from mqt_vlm.train.config import TrainableConfig

PARTS = ("vision_tower.", "mqt.", "language_model.")


def is_trainable(name: str, spec: TrainableConfig) -> bool:
    """Whether parameter `name` (as in `MQTForConditionalGeneration.named_parameters()`) trains."""
    if name.startswith("mqt."):
        return spec.mqt and (spec.pos_embed or name != "mqt.pos_embed")
    if name.startswith("vision_tower."):
        return spec.vision_tower
    if name.startswith("language_model."):
        if spec.language_model == "full":
            return True
        if spec.language_model == "lora":
            return ".lora_" in name
        return False
    raise MQTError(f"Parameter {name!r} is outside {PARTS}; extend train.trainability.is_trainable for it.")


def apply_trainability(model: nn.Module, spec: TrainableConfig) -> list[str]:
    """Set requires_grad on every parameter and return the sorted names of the trainable ones."""
    if spec.language_model == "lora" and not any(".lora_" in name for name, _ in model.named_parameters()):
        raise MQTError("trainable.language_model is 'lora' but the model has no LoRA adapters; add them first.")
    trainable = []
    for name, parameter in model.named_parameters():
        flag = is_trainable(name, spec)
        parameter.requires_grad_(flag)
        if flag:
            trainable.append(name)
    if not trainable:
        raise MQTError("No parameter is trainable with this configuration.")
    return sorted(trainable)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable and total parameter counts, for the start-of-run log."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total}
