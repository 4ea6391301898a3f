"""Released `query_abstractor.bin` loading (weights-only pickles) and the LoRA merge of the export."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest
import torch

from mqt_vlm.errors import MQTError
from mqt_vlm.train.config import LoraConfig
from mqt_vlm.train.export import merge_lora_state_dict
from mqt_vlm.train.model_init import add_lora
from mqt_vlm.train.mqt_weights import load_mqt_weights


def test_query_abstractor_bin_loads_by_prefix(tiny, tmp_path: Path) -> None:
    source = copy.deepcopy(tiny[0])
    with torch.no_grad():
        for parameter in source.mqt.parameters():
            parameter.add_(torch.randn_like(parameter))
    released = {f"model.query_abstractor.{k}": v.to(torch.bfloat16) for k, v in source.mqt.state_dict().items()}
    path = tmp_path / "query_abstractor.bin"
    torch.save(released, path)
    target = copy.deepcopy(tiny[0])
    keys = load_mqt_weights(target.mqt, path)
    assert "pos_embed" in keys and "attn.in_proj_weight" in keys
    for key, value in source.mqt.state_dict().items():
        torch.testing.assert_close(target.mqt.state_dict()[key], value.to(torch.bfloat16).float())


def test_mismatched_or_foreign_files_are_refused(tiny, tmp_path: Path) -> None:
    model = copy.deepcopy(tiny[0])
    wrong = {f"model.query_abstractor.{k}": torch.zeros(3) for k in model.mqt.state_dict()}
    torch.save(wrong, tmp_path / "wrong.bin")
    with pytest.raises(MQTError, match="shape"):
        load_mqt_weights(model.mqt, tmp_path / "wrong.bin")
    torch.save({"model.layers.0.weight": torch.zeros(2)}, tmp_path / "lm.bin")
    with pytest.raises(MQTError, match="query_abstractor"):
        load_mqt_weights(model.mqt, tmp_path / "lm.bin")


class _Payload:
    def __reduce__(self):  # would run code when unpickled without weights_only
        return (print, ("pwned",))


def test_pickles_are_opened_weights_only(tiny, tmp_path: Path) -> None:
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps({"model.query_abstractor.query": _Payload()}))
    with pytest.raises(MQTError, match="weights_only"):
        load_mqt_weights(copy.deepcopy(tiny[0]).mqt, path)


def test_lora_merge_matches_peft(tiny) -> None:
    model = copy.deepcopy(tiny[0])
    add_lora(model, LoraConfig(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "down_proj"]))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".lora_B." in name:
                parameter.normal_(std=0.1)  # B starts at zero; make the adapters do something
    merged = merge_lora_state_dict(model.state_dict(), scaling=8 / 4)
    reference = copy.deepcopy(model)
    reference.language_model = reference.language_model.merge_and_unload()
    expected = reference.state_dict()
    assert set(merged) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(merged[key], value, rtol=1e-5, atol=1e-6)
    assert set(merged) == set(tiny[0].state_dict())  # plain names: loads into a model without PEFT
