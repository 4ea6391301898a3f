"""Training configuration: typed dataclasses read from YAML/JSON, validated before anything runs.

A stage is a config, not a code path: stage 1 and stage 2 differ only in the values below (the
model to start from, the template, the budget sampler, what is trainable, batch size, lr, epochs).
Shipped presets live in `configs/` (paper 7B and tiny CPU versions of both stages).

Unknown keys and wrong types are errors that name the offending key, because a typo in a config
(e.g. `learning_rte`) would otherwise silently train with a default for days.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mqt_vlm.errors import MQTError
from mqt_vlm.processing.templates import TEMPLATES
from mqt_vlm.train.budgets import parse_budget_sampler


@dataclass
class ModelConfig:
    """Where the model comes from: exactly one of `pretrained` or `preset`.

    pretrained: an mqt_vlm directory (a stage-1 output, or any exported model) or builtin:NAME.
    preset: an architecture preset ("tiny", "mqt-llava-7b"); random weights, except the parts named
      by `vision` / `language_model` (HF folders or hub ids), whose weights are loaded.
    mqt_weights: query-transformer weights applied afterwards (a released `query_abstractor.bin`,
      or a .safetensors/.bin holding `mqt.*` tensors), e.g. to start stage 2 from a released stage 1.
    """

    pretrained: str | None = None
    preset: str | None = None
    vision: str | None = None
    language_model: str | None = None
    tokenizer: str | None = None
    gguf_file: str | None = None
    mqt_weights: str | None = None

    def validate(self) -> None:
        if (self.pretrained is None) == (self.preset is None):
            raise MQTError("model: set exactly one of 'pretrained' (an mqt_vlm directory, e.g. the stage-1 "
                           "output; --init-from) or 'preset' (an architecture preset such as 'tiny').")
        if self.preset is not None and self.tokenizer is None and self.language_model is None:
            raise MQTError("model: a preset needs 'tokenizer' (or 'language_model' to take it from).")


@dataclass
class DataConfig:
    path: str | None = None
    image_folder: str | None = None
    template: str = "vicuna_v1"
    max_length: int = 2048
    group_by_length: bool = True
    group_by_modality: bool = True
    num_workers: int = 4
    skip_bad_samples: bool = False
    verify_images: bool = False
    allow_absolute_paths: bool = False  # image paths may be absolute (relative ones never leave image_folder)

    def validate(self) -> None:
        if self.path is None:
            raise MQTError("data.path is not set; pass --data FILE (a LLaVA .json or .jsonl file).")
        if self.template not in TEMPLATES:
            raise MQTError(f"data.template must be one of {TEMPLATES}, got {self.template!r}.")
        _positive("data.max_length", self.max_length)
        if self.num_workers < 0:
            raise MQTError("data.num_workers must be >= 0.")


@dataclass
class BudgetConfig:
    sampler: str = "fixed:256"
    per_step: int = 1

    def validate(self) -> None:
        sampler = parse_budget_sampler(self.sampler)
        _positive("budget.per_step", self.per_step)
        if self.per_step > len(sampler.support):
            raise MQTError(f"budget.per_step={self.per_step} exceeds the {len(sampler.support)} values of {self.sampler!r}.")


@dataclass
class TrainableConfig:
    """What the optimizer updates; `train.trainability.apply_trainability` is the one place that applies it."""

    mqt: bool = True
    pos_embed: bool = True
    language_model: Literal["frozen", "full", "lora"] = "frozen"
    vision_tower: bool = False


@dataclass
class LoraConfig:
    r: int = 128
    alpha: int = 256
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    quantization: Literal["none", "4bit", "8bit"] = "none"

    def validate(self) -> None:
        _positive("lora.r", self.r)
        _positive("lora.alpha", self.alpha)
        if not 0 <= self.dropout < 1:
            raise MQTError("lora.dropout must be in [0, 1).")
        if not self.target_modules:
            raise MQTError("lora.target_modules is empty.")


@dataclass
class OptimConfig:
    global_batch_size: int = 128
    micro_batch_size: int = 16
    learning_rate: float = 2e-5
    mqt_learning_rate: float | None = None  # None: learning_rate (LLaVA's LoRA recipe uses 2e-5 here, 2e-4 for LoRA)
    epochs: int = 1
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    max_grad_norm: float = 1.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8

    def validate(self) -> None:
        _positive("optim.global_batch_size", self.global_batch_size)
        _positive("optim.micro_batch_size", self.micro_batch_size)
        _positive("optim.epochs", self.epochs)
        if self.global_batch_size % self.micro_batch_size:
            raise MQTError(f"optim.global_batch_size={self.global_batch_size} must be a multiple of micro_batch_size={self.micro_batch_size}.")
        if self.mqt_learning_rate is not None and self.mqt_learning_rate <= 0:
            raise MQTError("optim.mqt_learning_rate must be positive (or null for learning_rate).")
        if self.learning_rate <= 0 or not 0 <= self.warmup_ratio < 1 or self.weight_decay < 0 or self.max_grad_norm < 0:
            raise MQTError("optim: need learning_rate > 0, 0 <= warmup_ratio < 1, weight_decay >= 0, max_grad_norm >= 0 (0 = no clipping).")


@dataclass
class RuntimeConfig:
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # auto: bf16 on a GPU that has it, else fp32
    frozen_dtype: Literal["fp32", "bf16", "fp16"] = "fp32"  # storage of frozen weights under mixed precision
    gradient_checkpointing: bool = True
    seed: int = 42
    save_every: int = 500
    keep_checkpoints: int = 2
    max_steps: int | None = None
    tensorboard: bool = False

    def validate(self) -> None:
        _positive("runtime.save_every", self.save_every)
        _positive("runtime.keep_checkpoints", self.keep_checkpoints)
        if self.max_steps is not None:
            _positive("runtime.max_steps", self.max_steps)


@dataclass
class TrainConfig:
    stage: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    trainable: TrainableConfig = field(default_factory=TrainableConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def validate(self) -> "TrainConfig":
        for part in (self.model, self.data, self.budget, self.lora, self.optim, self.runtime):
            part.validate()
        if not (self.trainable.mqt or self.trainable.language_model != "frozen" or self.trainable.vision_tower):
            raise MQTError("trainable: nothing would be trained; enable mqt, the language model or the vision tower.")
        if self.lora.quantization != "none" and self.trainable.language_model != "lora":
            raise MQTError("lora.quantization (QLoRA) needs trainable.language_model: lora.")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_overrides(self, overrides: dict[str, Any]) -> "TrainConfig":
        """A copy with dotted keys replaced (`{"optim.learning_rate": 1e-4}`); None values are ignored."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            if value is None:
                continue
            section, _, key = dotted.partition(".")
            if section not in data or not isinstance(data[section], dict) or key not in data[section]:
                raise MQTError(f"Unknown config key {dotted!r}.")
            data[section][key] = value
        return from_dict(TrainConfig, data).validate()


def _positive(name: str, value: int) -> None:
    if isinstance(value, bool) or value < 1:
        raise MQTError(f"{name} must be a positive integer, got {value!r}.")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check `value` against a type hint (the subset our configs use); ints pass as floats."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(value, option, where)
            except MQTError as exc:
                errors.append(str(exc))
        raise MQTError(errors[0] if errors else f"{where}: invalid value {value!r}.")
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise MQTError(f"{where} must be one of {list(typing.get_args(hint))}, got {value!r}.")
        return value
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise MQTError(f"{where} must be a list, got {value!r}.")
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise MQTError(f"{where} must be true or false, got {value!r}.")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise MQTError(f"{where} must be an integer, got {value!r}.")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MQTError(f"{where} must be a number, got {value!r}.")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise MQTError(f"{where} must be a string, got {value!r}.")
        return value
    raise MQTError(f"{where}: unsupported config type {hint!r}.")  # pragma: no cover


def from_dict(cls: Any, data: Any, where: str = "config") -> Any:
    """Build dataclass `cls` from a mapping, refusing unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise MQTError(f"{where} must be a mapping, got {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise MQTError(f"Unknown key(s) {unknown} in {where}; known: {sorted(names)}.")
    return cls(**{key: _coerce(value, hints[key], f"{where}.{key}" if where != "config" else key) for key, value in data.items()})


def load_config(path: Path) -> TrainConfig:
    """Read a YAML (.yaml/.yml) or JSON config; validation happens after CLI overrides are applied."""
    path = Path(path)
    if not path.is_file():
        raise MQTError(f"Config file {path} does not exist (presets are in the repository's configs/ folder).")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    return from_dict(TrainConfig, data)
