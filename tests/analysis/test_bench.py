"""`mqt bench` on the tiny model: the LLaVA-style baseline shares our modules and reads the same
features, the roofline's weight counts match the real modules, timings and memory are measured,
and the report holds every budget next to the baseline."""

from __future__ import annotations

import json

import pytest
import torch

from mqt_vlm.analysis.bench import (
    PeakRSS,
    build_llava_baseline,
    free_token_id,
    llava_request,
    mqt_request,
    parameter_bytes,
    timed_generate,
)
from mqt_vlm.analysis.bench_cli import bench, format_report, run_bench
from mqt_vlm.analysis.flops import from_config, llm_prefill_flops
from mqt_vlm.analysis.roofline import (
    MachineRates,
    Phase,
    best_rates,
    connector_params,
    decode_phase,
    kv_cache_bytes,
    llm_params_read,
    measure_machine,
    prefill_phase,
    vision_params,
)
from mqt_vlm.analysis.shapes import MLPProjectorShape
from mqt_vlm.errors import MQTError

PROMPT_QUESTION = "What is in the image?"
RATES = MachineRates(peak_flops=1e11, bandwidth=1e10, copy_bandwidth=1e10, threads=1, matmul_size=0, stream_bytes=0, cpu="test")


def numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture()
def baseline(tiny):
    model, processor = tiny
    prompt = processor.format_prompt(PROMPT_QUESTION)
    ids = processor(text=prompt.replace(processor.image_token, ""))["input_ids"]
    image_id = free_token_id(model.config.text_config.vocab_size, ids)
    return build_llava_baseline(model, image_id), image_id, prompt


def test_baseline_shares_the_tower_and_lm_and_reads_the_same_features(tiny, baseline, random_image):
    model, processor = tiny
    llava, image_id, prompt = baseline
    ours = {p.data_ptr() for p in model.parameters()}
    projector = {p.data_ptr() for p in llava.model.multi_modal_projector.parameters()}
    assert {p.data_ptr() for p in llava.parameters()} - projector <= ours
    assert parameter_bytes(llava) == parameter_bytes(model.vision_tower, model.language_model) + 4 * numel(llava.model.multi_modal_projector)
    pixel_values = processor.image_processor(random_image)["pixel_values"]
    with torch.no_grad():
        theirs = llava.model.get_image_features(pixel_values=pixel_values, return_dict=True).pooler_output[0]
        expected = llava.model.multi_modal_projector(model.get_image_features(pixel_values))[0]
    torch.testing.assert_close(theirs, expected)  # layer -2, CLS dropped, all 16 patches

    request = llava_request(processor, random_image, prompt, 16, image_id)
    assert int((request.input_ids == image_id).sum()) == 16 and request.visual_tokens == 16
    mqt = mqt_request(model, processor, random_image, prompt, 4)
    assert request.text_tokens == mqt.text_tokens == mqt.input_ids.shape[1] - 4
    with torch.no_grad():
        logits = llava(**request.generate_kwargs(cached=False)).logits
    assert logits.shape == (1, request.input_ids.shape[1], model.config.text_config.vocab_size)


def test_free_token_id_avoids_the_prompt():
    assert free_token_id(10, torch.tensor([[9, 1, 2]])) == 8
    with pytest.raises(MQTError):
        free_token_id(3, torch.tensor([[0, 1, 2]]))


def test_roofline_weight_counts_match_the_modules(tiny, baseline):
    model, _ = tiny
    llava = baseline[0]
    spec = from_config(model.config)
    tower = model.vision_tower  # ours stops at hidden_states[-2]: the last layer and post-norm go unread
    assert vision_params(spec.vision) == numel(tower) - numel(tower.encoder.layers[-1]) - numel(tower.post_layernorm)
    assert vision_params(from_config(model.config, full_tower=True).vision) == numel(tower)
    assert connector_params(spec.connector) == numel(model.mqt)
    mlp = MLPProjectorShape(spec.vision.width, spec.llm.hidden, spec.llm.hidden)
    assert connector_params(mlp) == numel(llava.model.multi_modal_projector)
    lm = model.language_model
    untied_embedding = 0 if lm.lm_head.weight is lm.model.embed_tokens.weight else lm.model.embed_tokens.weight.numel()
    assert llm_params_read(spec.llm) == numel(lm) - untied_embedding
    cached = lm(input_ids=torch.tensor([[1, 2, 3, 4, 5]]), use_cache=True).past_key_values
    k, v = cached.layers[0].keys, cached.layers[0].values
    assert kv_cache_bytes(spec.llm, 5) == spec.llm.layers * (k.numel() + v.numel()) * 4


def test_roofline_takes_the_larger_term_and_batching_amortises_weights(tiny):
    spec = from_config(tiny[0].config)
    compute, memory = Phase("a", 10**12, 10**6), Phase("b", 10**6, 10**12)
    assert compute.seconds(RATES) == 10.0 and compute.bound(RATES) == "compute"
    assert memory.seconds(RATES) == 100.0 and memory.bound(RATES) == "memory"
    one, eight = decode_phase(spec.llm, 40), decode_phase(spec.llm, 40, batch=8)
    assert eight.flops == 8 * one.flops and eight.bytes < 8 * one.bytes  # weights read once per step
    prefill = prefill_phase(spec.llm, 40)
    assert prefill.flops == llm_prefill_flops(spec.llm, 40)
    assert prefill.bytes == 4 * llm_params_read(spec.llm) + kv_cache_bytes(spec.llm, 40)


def test_cpu_clock_matches_wall_clock_for_single_threaded_work(tiny, random_image):
    """Without other processes the two clocks agree; the cpu clock only drops time spent queued."""
    import time

    from mqt_vlm.analysis.roofline import get_clock

    model, processor = tiny
    request = mqt_request(model, processor, random_image, processor.format_prompt(PROMPT_QUESTION), 4)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu = timed_generate(model, 3, clock="cpu", **request.generate_kwargs(cached=False))
        start = get_clock("cpu")()
        time.sleep(0.2)  # sleeping is not work
        assert get_clock("cpu")() - start < 0.05
    finally:
        torch.set_num_threads(threads)
    assert 0 < cpu.ttft_s < 5 and cpu.decode_s_per_token > 0
    with pytest.raises(MQTError, match="clock"):
        get_clock("gpu")
    with pytest.raises(MQTError, match="one thread"):
        torch.set_num_threads(2)
        try:
            run_bench(model, processor, [4], random_image, "<image>\nq", repeats=1, new_tokens=1, rates=RATES, clock="cpu")
        finally:
            torch.set_num_threads(threads)


def test_measure_machine_and_best_rates():
    first = measure_machine(matmul_size=128, stream_mib=8, repeats=2)
    assert first.peak_flops > 1e8 and first.bandwidth > 1e8 and first.threads >= 1 and first.cpu
    slow = MachineRates(1.0, 1.0, 1.0, 1, 128, 1, "x")
    best = best_rates(slow, first)
    assert best.peak_flops == first.peak_flops and best.bandwidth == first.bandwidth
    assert best.ridge == pytest.approx(first.peak_flops / first.bandwidth)


def test_peak_rss_sees_a_large_allocation():
    with PeakRSS() as memory:
        block = torch.ones(64 * 2**20 // 4 * 4)  # 256 MiB, written so the pages are resident
        block.add_(1)
        del block
    assert memory.extra_bytes is not None and memory.extra_bytes > 200 * 2**20


def test_timed_generate_counts_prefill_and_decode(tiny, random_image):
    model, processor = tiny
    request = mqt_request(model, processor, random_image, processor.format_prompt(PROMPT_QUESTION), 4)
    several = timed_generate(model, 5, **request.generate_kwargs(cached=False))
    assert several.ttft_s > 0 and several.decode_s_per_token > 0
    with torch.no_grad():
        request.cache = model.encode_images(request.pixel_values)
    single = timed_generate(model, 1, **request.generate_kwargs(cached=True))
    assert single.decode_s_per_token is None


def test_run_bench_reports_every_budget_next_to_the_baseline(tiny, random_image):
    model, processor = tiny
    prompt = processor.format_prompt(PROMPT_QUESTION)
    report = run_bench(model, processor, [2, 16], random_image, prompt, repeats=1, new_tokens=3, batch_sizes=[1, 2], rates=RATES)
    rows = {r["name"]: r for r in report["rows"]}
    assert list(rows) == ["mqt-2", "mqt-16", "llava-16"]
    for row in rows.values():
        for key in ("ttft_s", "cached_ttft_s", "decode_s", "roofline_ttft_s", "ratio_ttft_s", "ratio_decode_s"):
            assert row[key] > 0, key
        assert row["cached_ttft_s"] < row["ttft_s"] * 5
    assert rows["llava-16"]["speedup_flops"] == 1.0 and rows["llava-16"]["speedup_ttft_s"] == 1.0
    assert rows["mqt-2"]["speedup_flops"] > rows["mqt-16"]["speedup_flops"]
    assert rows["mqt-2"]["flops"] < rows["mqt-16"]["flops"]
    assert [b["batch"] for b in report["batching"]] == [1, 2]
    assert report["batching"][1]["roofline_decode_tokens_per_s"] > report["batching"][0]["roofline_decode_tokens_per_s"]
    table = format_report(report)
    assert table.count("\n| mqt |") == 2 and "| llava | 16 |" in table
    with pytest.raises(MQTError, match="num_visual_tokens"):
        run_bench(model, processor, [17], random_image, prompt, repeats=1, new_tokens=1, rates=RATES)


def test_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench(shape="tiny", model=None, budgets="4", layers=2, repeats=1, new_tokens=2, batch_sizes="", baseline=False,
          threads=1, image=None, question="What is it?", json_out=out, quiet=None, clock="wall")
    report = json.loads(out.read_text())
    assert [r["name"] for r in report["rows"]] == ["mqt-4"] and report["machine"]["threads"] == 1
    assert "| mqt | 4 |" in capsys.readouterr().out
    bench(shape="tiny", model=None, budgets="4", layers=2, repeats=1, new_tokens=2, batch_sizes="", baseline=False,
          threads=1, image=None, question="What is it?", as_json=True, json_out=None, quiet=None, clock="wall")
    assert [r["name"] for r in json.loads(capsys.readouterr().out)["rows"]] == ["mqt-4"]  # stdout is the JSON alone
    with pytest.raises(MQTError, match="Unknown shape"):
        bench(shape="nope", model=None, budgets="4", layers=2, repeats=1, new_tokens=2, batch_sizes="", baseline=False,
              threads=1, image=None, question="q", json_out=None, quiet=None, clock="wall")
