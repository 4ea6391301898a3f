"""Build an elastic VLM from parts: a preset (JSON data), or any HF vision tower + any HF causal LM.

`build_model` returns the model and its processor together, because the image token id, the image
size and the budget range must agree between them.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig

from mqt_vlm.errors import MQTError
from mqt_vlm.modeling.auto import register
from mqt_vlm.modeling.configuration import MQTConfig
from mqt_vlm.modeling.modeling import MQTForConditionalGeneration
from mqt_vlm.processing.image_processor import CLIP_MEAN, CLIP_STD, MQTImageProcessor
from mqt_vlm.processing.processor import MQTProcessor


def preset_names() -> list[str]:
    return sorted(p.name[: -len(".json")] for p in resources.files("mqt_vlm.presets").iterdir() if p.name.endswith(".json"))


def load_preset(name: str) -> dict[str, Any]:
    """A model preset: vision_config, text_config, mqt_config and image_processor settings.
    `name` is a shipped preset or a path to a JSON file in the same layout."""
    if name.endswith(".json") and Path(name).is_file():
        return json.loads(Path(name).read_text())
    path = resources.files("mqt_vlm.presets") / f"{name}.json"
    if not path.is_file():
        raise MQTError(f"Unknown preset {name!r}; available: {preset_names()}.")
    return json.loads(path.read_text())


def _vision_config(vision: str | dict | PretrainedConfig) -> PretrainedConfig:
    if isinstance(vision, PretrainedConfig):
        config = vision
    elif isinstance(vision, dict):
        config = AutoConfig.for_model(**vision)
    else:
        config = AutoConfig.from_pretrained(vision)
    return getattr(config, "vision_config", None) or config  # a full CLIP/SigLIP config -> its tower


def _text_config(language_model: str | dict | PretrainedConfig, gguf_file: str | None) -> PretrainedConfig:
    if isinstance(language_model, PretrainedConfig):
        return language_model
    if isinstance(language_model, dict):
        return AutoConfig.for_model(**language_model)
    return AutoConfig.from_pretrained(language_model, gguf_file=gguf_file)


def image_processor_for(vision: Any, vision_config: PretrainedConfig, **overrides: Any) -> MQTImageProcessor:
    """LLaVA-style preprocessing sized for the tower; mean/std from the tower's folder when it has one."""
    settings: dict[str, Any] = {"crop_size": int(getattr(vision_config, "image_size", 336))}
    if isinstance(vision, (str, Path)) and (Path(vision) / "preprocessor_config.json").is_file():
        saved = json.loads((Path(vision) / "preprocessor_config.json").read_text())
        settings["image_mean"] = saved.get("image_mean", CLIP_MEAN)
        settings["image_std"] = saved.get("image_std", CLIP_STD)
    settings.update(overrides)
    return MQTImageProcessor(**settings)


def build_model(
    vision: str | dict | PretrainedConfig,
    language_model: str | dict | PretrainedConfig,
    tokenizer: Any,
    mqt: dict[str, Any] | None = None,
    *,
    gguf_file: str | None = None,
    load_weights: bool = True,
    image_processor: dict[str, Any] | None = None,
    **config_kwargs: Any,
) -> tuple[MQTForConditionalGeneration, MQTProcessor]:
    """Join a vision tower, a fresh MQT and a causal LM.

    `vision` / `language_model` are HF folders or hub ids (weights are loaded when `load_weights`),
    or configs (random weights). `tokenizer` is a tokenizer or a folder to load one from.
    """
    register()
    if isinstance(tokenizer, (str, Path)):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer, gguf_file=gguf_file if str(tokenizer) == str(language_model) else None)
    vision_config = _vision_config(vision)
    text_config = _text_config(language_model, gguf_file)
    processor = MQTProcessor(
        image_processor_for(vision, vision_config, **(image_processor or {})),
        tokenizer,
        num_queries=int((mqt or {}).get("num_queries", 256)),
    )
    config = MQTConfig(
        vision_config=vision_config.to_dict(),
        text_config=text_config.to_dict(),
        mqt_config=dict(mqt or {}),
        image_token_id=processor.image_token_id,
        **config_kwargs,
    )
    processor.default_num_visual_tokens = int(config.default_num_visual_tokens)  # one default, saved with both
    model = MQTForConditionalGeneration(config)
    if load_weights and isinstance(vision, (str, Path)):
        tower = AutoModel.from_pretrained(vision)
        tower = getattr(tower, "vision_model", None) if not hasattr(tower, "embeddings") and hasattr(tower, "vision_model") else tower
        _load_submodule(model.vision_tower, tower.state_dict(), "vision tower")
    if load_weights and isinstance(language_model, (str, Path)):
        lm = AutoModelForCausalLM.from_pretrained(language_model, gguf_file=gguf_file)
        _load_submodule(model.language_model, lm.state_dict(), "language model")
    return model, processor


def build_from_preset(name: str, tokenizer: Any, **overrides: Any) -> tuple[MQTForConditionalGeneration, MQTProcessor]:
    """A random-weight model from a preset (e.g. "tiny" for tests)."""
    preset = load_preset(name)
    extra = {k: v for k, v in preset.items() if k not in ("description", "vision_config", "text_config", "mqt_config", "image_processor")}
    extra.update(overrides)
    return build_model(
        preset["vision_config"],
        preset["text_config"],
        tokenizer,
        preset.get("mqt_config"),
        image_processor=preset.get("image_processor"),
        **extra,
    )


def _load_submodule(module: Any, state: dict[str, Any], what: str) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise MQTError(f"Loading the {what} failed: missing {missing[:8]}, unexpected {list(unexpected)[:8]}.")
