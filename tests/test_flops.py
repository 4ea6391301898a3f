"""Analytic FLOPs: exact against torch's FlopCounterMode on tiny models, close to the paper's curve."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

from mqt_vlm.analysis.flops import (
    LLMShape,
    ModelShape,
    MQTShape,
    VisionShape,
    from_config,
    llm_decode_flops,
    llm_prefill_flops,
    load_preset,
    measure_flops,
    model_flops,
    mqt_flops,
    vision_flops,
)
from mqt_vlm.analysis.flops_cli import flops
from mqt_vlm.errors import MQTError
from mqt_vlm.modeling.configuration import MQTConfig
from mqt_vlm.modeling.modeling import MQTForConditionalGeneration
from mqt_vlm.modeling.query_transformer import MatryoshkaQueryTransformer, QueryTransformerConfig

VOCAB = 500
VISION = dict(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
TEXT = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=176, vocab_size=VOCAB)
TINY_LLM = LLMShape(hidden=64, layers=2, heads=4, kv_heads=2, head_dim=16, intermediate=176, vocab=VOCAB)


def close(measured: int, analytic: int, tol: float = 0.01) -> bool:
    return measured > 0 and abs(analytic / measured - 1) < tol


@pytest.fixture(scope="module")
def tiny_vlm() -> MQTForConditionalGeneration:
    torch.manual_seed(0)
    cfg = MQTConfig(
        vision_config=CLIPVisionConfig(**VISION).to_dict(),
        text_config=LlamaConfig(**TEXT).to_dict(),
        mqt_config={"num_queries": 16, "num_heads": 4},
        image_token_id=VOCAB,
    )
    return MQTForConditionalGeneration(cfg).eval()


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_vision_tower_matches_flop_counter(attn: str) -> None:
    model = CLIPVisionModel._from_config(CLIPVisionConfig(**VISION), attn_implementation=attn).eval()
    shape = VisionShape(image_size=32, patch_size=8, width=64, layers=2, heads=4, mlp_size=128)
    measured = measure_flops(model, torch.randn(2, 3, 32, 32), output_hidden_states=True)
    assert close(measured, 2 * vision_flops(shape))


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_llm_prefill_and_decode_match_flop_counter(attn: str) -> None:
    torch.manual_seed(0)
    model = LlamaForCausalLM._from_config(LlamaConfig(**TEXT), attn_implementation=attn).eval()
    ids = torch.randint(0, VOCAB, (1, 40))
    every = dataclasses.replace(TINY_LLM, lm_head_positions="all")
    assert close(measure_flops(model, input_ids=ids), llm_prefill_flops(every, 40))
    assert close(measure_flops(model, input_ids=ids, logits_to_keep=1), llm_prefill_flops(TINY_LLM, 40))
    cache = model(input_ids=ids, use_cache=True).past_key_values
    measured = measure_flops(model, input_ids=ids[:, :1], past_key_values=cache)
    assert close(measured, llm_decode_flops(TINY_LLM, 40))


@pytest.mark.parametrize("depth,kv_dim", [(1, 64), (1, 48), (2, 64)])
def test_mqt_matches_flop_counter_at_every_budget(depth: int, kv_dim: int) -> None:
    cfg = QueryTransformerConfig(num_queries=16, kv_dim=kv_dim, hidden_size=64, output_dim=96, num_heads=4, depth=depth)
    mqt = MatryoshkaQueryTransformer(cfg).eval()
    shape = MQTShape(num_queries=16, width=64, kv_dim=kv_dim, output_dim=96, heads=4, depth=depth)
    features = torch.randn(2, 16, kv_dim)
    for m in (1, 4, 16):  # all M queries are computed: the cost does not depend on m
        assert close(measure_flops(mqt, features, m), 2 * mqt_flops(shape, 16))


def test_plain_flop_counter_misses_cpu_sdpa() -> None:
    """The trap measure_flops works around: stock FlopCounterMode counts CPU SDPA as 0."""
    model = LlamaForCausalLM._from_config(LlamaConfig(**TEXT), attn_implementation="sdpa").eval()
    ids = torch.randint(0, VOCAB, (1, 40))
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(input_ids=ids)
    attention = 2 * 2 * 2 * 40 * 40 * 64  # layers * (QK^T + AV) * 2 FLOPs * L^2 * width
    assert measure_flops(model, input_ids=ids) - counter.get_total_flops() == attention


@pytest.mark.parametrize("m", [1, 4, 16])
def test_full_model_matches_flop_counter(tiny_vlm: MQTForConditionalGeneration, m: int) -> None:
    text = 12
    ids = torch.cat(
        [torch.randint(0, VOCAB, (1, 5)), torch.full((1, m), VOCAB), torch.randint(0, VOCAB, (1, text - 5))], dim=1
    )
    pixels = torch.randn(1, 3, 32, 32)
    spec = from_config(tiny_vlm.config)
    assert spec.vision.layers_run == 1  # the tower stops at the feature layer ([-2] of 2 layers)
    assert from_config(tiny_vlm.config, full_tower=True).vision.layers_run == 2
    measured = measure_flops(tiny_vlm, input_ids=ids, pixel_values=pixels, num_visual_tokens=m, logits_to_keep=1)
    assert close(measured, model_flops(spec, m, text).total)
    every = dataclasses.replace(spec, llm=dataclasses.replace(spec.llm, lm_head_positions="all"))
    measured = measure_flops(tiny_vlm, input_ids=ids, pixel_values=pixels, num_visual_tokens=m)
    assert close(measured, model_flops(every, m, text).total)


def test_curve_within_10_percent_of_paper() -> None:
    points = 0
    for name in ("mqt-llava-7b", "llava-1.5-7b"):
        spec = load_preset(name)
        for m, paper in spec.reference_tflops.items():
            ours = model_flops(spec, m).tflops
            assert abs(ours / paper - 1) < 0.10, (name, m, ours, paper)
            points += 1
    assert points == 7


def test_7b_components() -> None:
    spec = load_preset("mqt-llava-7b")
    result = model_flops(spec, 256)
    assert 0.37e12 < result.vision < 0.39e12  # CLIP-L/336, 24 layers, 577 tokens
    assert 6.0e9 < result.connector < 6.5e9
    # one LLaMA-7B token costs about 2 x 6.5B parameters
    per_token = llm_prefill_flops(spec.llm, 101) - llm_prefill_flops(spec.llm, 100)
    assert 12.9e9 < per_token < 13.3e9
    fewer = dataclasses.replace(spec, vision=dataclasses.replace(spec.vision, run_all_layers=False))
    assert fewer.vision.layers_run == 23 and vision_flops(fewer.vision) < vision_flops(spec.vision)


def test_monotone_in_budget_and_fixed_costs_constant() -> None:
    spec = load_preset("mqt-llava-7b")
    results = [model_flops(spec, m) for m in range(1, 257)]
    totals = [r.total for r in results]
    assert all(a < b for a, b in zip(totals, totals[1:]))
    assert len({r.vision for r in results}) == 1 and len({r.connector for r in results}) == 1
    assert model_flops(spec, 16).total < model_flops(spec, 16, text_tokens=200).total


def test_decode_grows_with_context() -> None:
    llm = load_preset("mqt-llava-7b").llm
    costs = [llm_decode_flops(llm, c) for c in (0, 16, 256, 2048)]
    assert all(a < b for a, b in zip(costs, costs[1:]))
    assert costs[1] - costs[0] == llm.layers * 4 * 16 * llm.heads * llm.head_dim


def test_errors_and_round_trip(tmp_path: Path) -> None:
    spec = load_preset("mqt-llava-7b")
    assert ModelShape.from_dict(spec.to_dict()) == spec
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(spec.to_dict()))
    assert load_preset(str(path)) == spec
    with pytest.raises(MQTError, match="Unknown FLOPs preset"):
        load_preset("no-such-model")
    with pytest.raises(MQTError, match="cannot use 64"):
        model_flops(load_preset("llava-1.5-7b"), 64)
    with pytest.raises(MQTError):
        model_flops(spec, 257)
    bad = spec.to_dict()
    bad["llm"]["hidden"] = 5120
    with pytest.raises(MQTError, match="LLM hidden size"):
        ModelShape.from_dict(bad)
    bad = spec.to_dict()
    bad["vision"]["depth"] = 3
    with pytest.raises(MQTError, match="Unknown keys"):
        ModelShape.from_dict(bad)


def test_cli_json_table_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "curve.png"
    flops(budgets="8,16,256", as_json=True, plot=plot)
    report = json.loads(capsys.readouterr().out)
    assert [row["budget"] for row in report["rows"]] == [8, 16, 256]
    assert report["rows"][1]["paper_tflops"] == 1.34
    assert report["baseline"]["num_visual_tokens"] == 576 and report["baseline"]["paper_tflops"] == 8.7
    assert 1.8 < report["rows"][2]["speedup"] < 2.2  # "2x at 256"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    flops(budgets="16", baseline="none")
    table = capsys.readouterr().out
    assert "1.34" in table and "base" not in table
    with pytest.raises(MQTError, match="--budgets"):
        flops(budgets="16,x")
