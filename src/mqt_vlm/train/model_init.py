"""Build the model a stage starts from: a preset or a pretrained model (a folder or `builtin:NAME`,
read by `mqt_vlm.loading.load_model`, the loader every command uses, strict about missing tensors),
optional released MQT weights, optional LoRA adapters, then trainability and memory settings.

Order matters and lives here only: weights are loaded before adapters are added, adapters before
`apply_trainability` (which must see the adapter parameters), and frozen weights are cast to the
storage dtype last, after it is known which weights are frozen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mqt_vlm.data.encode import tokenizer_source
from mqt_vlm.errors import MQTError
from mqt_vlm.loading import load_model, parse_dtype
from mqt_vlm.train.config import LoraConfig, ModelConfig, TrainConfig
from mqt_vlm.train.mqt_weights import load_mqt_weights
from mqt_vlm.train.trainability import apply_trainability


def _quantization_config(lora: LoraConfig) -> Any:
    if lora.quantization == "none":
        return None
    if not torch.cuda.is_available():
        raise MQTError("lora.quantization (QLoRA) needs a CUDA GPU and bitsandbytes; use quantization: none on CPU.")
    from transformers import BitsAndBytesConfig

    skip = ["vision_tower", "mqt", "lm_head"]  # only the LLM's linear layers are quantized
    if lora.quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16, llm_int8_skip_modules=skip)
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)


def load_base(model_config: ModelConfig, lora: LoraConfig | None = None) -> tuple[Any, Any]:
    """(model, processor) before any training-specific change."""
    from mqt_vlm.modeling.auto import register
    from mqt_vlm.modeling.builder import build_model, load_preset

    register()
    quantization = _quantization_config(lora) if lora is not None else None
    if model_config.pretrained is not None:  # fp32 here: frozen_dtype decides storage later
        model, processor = load_model(model_config.pretrained, dtype="float32", quantization_config=quantization)
    else:
        if quantization is not None:
            raise MQTError("QLoRA loads quantized weights with from_pretrained: start from model.pretrained, not a preset.")
        assert model_config.preset is not None
        preset = load_preset(model_config.preset)
        extra = {k: v for k, v in preset.items() if k not in ("description", "vision_config", "text_config", "mqt_config", "image_processor")}
        tokenizer = tokenizer_source(model_config.tokenizer or model_config.language_model or "")
        model, processor = build_model(
            model_config.vision or preset["vision_config"],
            model_config.language_model or preset["text_config"],
            tokenizer,
            preset.get("mqt_config"),
            gguf_file=model_config.gguf_file,
            image_processor=preset.get("image_processor"),
            **extra,
        )
    if model_config.mqt_weights is not None:
        load_mqt_weights(model.mqt, Path(model_config.mqt_weights))
    return model, processor


def add_lora(model: Any, lora: LoraConfig) -> None:
    """Wrap the language model with PEFT LoRA adapters (in place; the rest of the model is untouched)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    peft_config = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias="none",
    )
    model.language_model = get_peft_model(model.language_model, peft_config)


def prepare_model(config: TrainConfig, mixed_precision: str) -> tuple[Any, Any, list[str]]:
    """The stage's model and processor, with trainability applied; returns the trainable names too."""
    use_lora = config.trainable.language_model == "lora"
    model, processor = load_base(config.model, config.lora if use_lora else None)
    if config.runtime.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if use_lora:
        add_lora(model, config.lora)
    trainable = apply_trainability(model, config.trainable)
    frozen_dtype = parse_dtype(config.runtime.frozen_dtype, "runtime.frozen_dtype")
    if frozen_dtype != torch.float32 and mixed_precision in ("bf16", "fp16"):
        for parameter in model.parameters():
            if not parameter.requires_grad and parameter.dtype == torch.float32:
                parameter.data = parameter.data.to(frozen_dtype)
    for parameter in model.parameters():  # optimizer master weights stay fp32
        if parameter.requires_grad and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()
    model.train()
    return model, processor, trainable
