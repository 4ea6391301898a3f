"""What each stage trains, as exact sets of parameter names; the shipped stage configs are valid."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from mqt_vlm.errors import MQTError
from mqt_vlm.train.config import TrainableConfig, load_config
from mqt_vlm.train.model_init import add_lora
from mqt_vlm.train.trainability import apply_trainability

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
MQT_NO_POS = {
    "mqt.query", "mqt.proj", "mqt.attn.in_proj_weight", "mqt.attn.in_proj_bias", "mqt.attn.out_proj.weight",
    "mqt.attn.out_proj.bias", "mqt.ln_q.weight", "mqt.ln_q.bias", "mqt.ln_k.weight", "mqt.ln_k.bias",
    "mqt.ln_v.weight", "mqt.ln_v.bias",
}


@pytest.fixture()
def model(tiny):
    return copy.deepcopy(tiny[0])


def test_stage1_trains_the_mqt_with_its_positional_embedding(model) -> None:
    spec = load_config(CONFIGS / "stage1-tiny.yaml").trainable
    assert set(apply_trainability(model, spec)) == MQT_NO_POS | {"mqt.pos_embed"}
    assert all(not p.requires_grad for n, p in model.named_parameters() if not n.startswith("mqt."))


def test_stage2_trains_llm_and_mqt_but_not_pos_embed_or_vision(model) -> None:
    spec = load_config(CONFIGS / "stage2-tiny.yaml").trainable
    language = {n for n, _ in model.named_parameters() if n.startswith("language_model.")}
    assert set(apply_trainability(model, spec)) == MQT_NO_POS | language
    assert not model.mqt.pos_embed.requires_grad
    assert not any(p.requires_grad for p in model.vision_tower.parameters())


def test_lora_trains_adapters_and_the_full_mqt(model) -> None:
    config = load_config(CONFIGS / "stage2-tiny-lora.yaml")
    add_lora(model, config.lora)
    trainable = set(apply_trainability(model, config.trainable))
    adapters = {n for n, _ in model.named_parameters() if ".lora_A." in n or ".lora_B." in n}
    # 2 layers x 7 projections x (A, B)
    assert len(adapters) == 28 and trainable == MQT_NO_POS | adapters


def test_lora_mode_without_adapters_is_an_error(model) -> None:
    with pytest.raises(MQTError, match="no LoRA adapters"):
        apply_trainability(model, TrainableConfig(language_model="lora"))


def test_unknown_parameters_are_not_silently_frozen(model) -> None:
    import torch

    model.extra_head = torch.nn.Linear(2, 2)
    with pytest.raises(MQTError, match="extra_head"):
        apply_trainability(model, TrainableConfig())


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_stage_configs_validate(name: str) -> None:
    config = load_config(CONFIGS / name)
    overrides = {"data.path": "data.json"}
    if config.model.preset is None:
        overrides["model.pretrained"] = "stage1/final"
    config = config.with_overrides(overrides)
    assert config.optim.global_batch_size % config.optim.micro_batch_size == 0


def test_paper_presets_match_the_recipe() -> None:
    one = load_config(CONFIGS / "stage1-7b.yaml")
    two = load_config(CONFIGS / "stage2-7b.yaml")
    assert (one.optim.global_batch_size, one.optim.learning_rate, one.optim.epochs, one.budget.sampler) == (256, 1e-3, 1, "fixed:256")
    assert (two.optim.global_batch_size, two.optim.learning_rate, two.optim.epochs, two.budget.sampler) == (128, 2e-5, 2, "even:2-256")
    for config in (one, two):
        assert (config.optim.scheduler, config.optim.warmup_ratio, config.optim.weight_decay) == ("cosine", 0.03, 0.0)
        assert (config.runtime.precision, config.runtime.gradient_checkpointing, config.data.max_length) == ("bf16", True, 2048)
    assert (one.data.template, two.data.template) == ("plain", "vicuna_v1")
    assert two.data.group_by_modality and not two.trainable.pos_embed and two.trainable.language_model == "full"


def test_config_errors_name_the_key(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  learning_rte: 0.1\n")
    with pytest.raises(MQTError, match="learning_rte"):
        load_config(bad)
    bad.write_text("optim:\n  global_batch_size: '8'\n")
    with pytest.raises(MQTError, match="optim.global_batch_size"):
        load_config(bad)
    bad.write_text("trainable:\n  language_model: half\n")
    with pytest.raises(MQTError, match="language_model"):
        load_config(bad)
    config = load_config(CONFIGS / "stage1-tiny.yaml")
    with pytest.raises(MQTError, match="data.path"):
        config.validate()
    with pytest.raises(MQTError, match="multiple"):
        config.with_overrides({"data.path": "x.json", "optim.micro_batch_size": 3})
