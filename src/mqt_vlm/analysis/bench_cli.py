"""`mqt bench`: latency of an MQT model per budget against a LLaVA-style baseline, with the analytic
FLOPs speedup and a roofline prediction next to each measurement.

The realistic shapes are built here, offline: a CLIP-L/336-shaped tower (random: no package ships
CLIP weights) with the real SmolLM2-135M-Instruct, or with a Vicuna-7B-shaped decoder cut to a few
layers (random). Measuring lives in `bench.py`, the roofline in `roofline.py`.
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
import tempfile
from pathlib import Path
from typing import Any

import typer

from mqt_vlm.cli.json_output import JsonFlag, JsonOut, emit
from mqt_vlm.errors import MQTError

SHAPES = ("smollm2-clip336", "vicuna7b-clip336", "tiny")
DEFAULT_QUESTION = "What is the man holding in his hand?"


def build_shape(shape: str, layers: int = 2, seed: int = 0) -> tuple[Any, Any, str]:
    """(model, processor, description) for a named benchmark shape, in eval mode."""
    import torch

    from mqt_vlm.assets import SMOLLM2_GGUF, llama_tokenizer_dir, smollm2_dir
    from mqt_vlm.modeling.builder import build_from_preset, build_model, load_preset

    if shape not in SHAPES:
        raise MQTError(f"Unknown shape {shape!r}; choose one of {SHAPES} or pass --model DIR.")
    torch.manual_seed(seed)
    preset = load_preset("mqt-llava-7b")
    mqt = preset["mqt_config"]
    cache = Path(tempfile.gettempdir()) / "mqt_vlm_bench"
    if shape == "tiny":
        model, processor = build_from_preset("tiny", str(llama_tokenizer_dir(cache)))
        return model.eval(), processor, "tiny random model (tests)"
    if shape == "smollm2-clip336":
        folder = str(smollm2_dir())
        model, processor = build_model(preset["vision_config"], folder, folder, mqt, gguf_file=SMOLLM2_GGUF)
        return model.eval(), processor, "CLIP-L/336-shaped tower (random) + MQT M=256 + SmolLM2-135M-Instruct (real weights)"
    if layers < 1:
        raise MQTError(f"--layers must be >= 1, got {layers}.")
    text = dict(preset["text_config"], num_hidden_layers=layers)
    model, processor = build_model(preset["vision_config"], text, str(llama_tokenizer_dir(cache)), mqt)
    return model.eval(), processor, f"CLIP-L/336-shaped tower + MQT M=256 + Vicuna-7B-shaped LLM cut to {layers} layers (all random)"


def default_image(size: tuple[int, int] = (640, 480)) -> Any:
    """A fixed noise image: the content does not change any timing, and it needs no download."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def run_bench(
    model: Any,
    processor: Any,
    budgets: list[int],
    image: Any,
    prompt: str,
    repeats: int = 3,
    new_tokens: int = 8,
    batch_sizes: list[int] | None = None,
    baseline: bool = True,
    log: Any = lambda _: None,
    rates: Any = None,
    quiet: float | None = None,
    clock: str = "wall",
) -> dict[str, Any]:
    """Measure every budget (and the baseline), and put the analytic FLOPs and the roofline next
    to each number. Returns plain data (the JSON output).

    `rates` (a `MachineRates`) skips measuring the machine; by default it is measured before and
    after the timings and the best of both is the roofline. `quiet`: see `measure_requests`.
    `clock="cpu"` times the calling thread's CPU time and needs one torch thread (see
    `roofline.CLOCKS`): the way to measure on a machine other processes keep busy."""
    import torch

    from mqt_vlm.analysis.bench import (
        build_llava_baseline,
        free_token_id,
        llava_request,
        measure_requests,
        mqt_request,
        parameter_bytes,
        wait_for_quiet,
    )
    from mqt_vlm.analysis.flops import from_config
    from mqt_vlm.analysis.roofline import best_rates, measure_machine
    from mqt_vlm.analysis.shapes import MLPProjectorShape
    from mqt_vlm.budgets import check_budget

    budgets = [check_budget(m, model.num_queries) for m in budgets]
    if clock == "cpu" and torch.get_num_threads() != 1:
        raise MQTError(f"clock='cpu' times one thread; set torch's threads to 1 (now {torch.get_num_threads()}).")
    spec = from_config(model.config)
    requests = [mqt_request(model, processor, image, prompt, m) for m in budgets]
    models: dict[str, Any] = {"mqt": model}
    encoders = {"mqt": lambda: model.encode_images(requests[0].pixel_values)}
    weights = {"mqt": parameter_bytes(model)}
    specs = {"mqt": spec}
    if baseline:
        text = model.config.text_config
        image_id = free_token_id(int(text.vocab_size), requests[0].input_ids)
        llava = build_llava_baseline(model, image_id)
        n = spec.vision.num_patches
        specs["llava"] = dataclasses.replace(  # transformers' LLaVA runs the whole tower
            from_config(model.config, full_tower=True),
            connector=MLPProjectorShape(spec.vision.width, spec.llm.hidden, spec.llm.hidden),
            name="llava-baseline",
        )
        base_request = llava_request(processor, image, prompt, n, image_id)
        requests.append(base_request)
        models["llava"] = llava
        encoders["llava"] = lambda: llava.model.get_image_features(pixel_values=base_request.pixel_values, return_dict=True)
        weights["llava"] = parameter_bytes(llava)
    with torch.inference_mode():  # the encode-once cache: visual tokens computed once per image
        for request in requests:
            request.cache = encoders[request.name.split("-", 1)[0]]()
    measured = []
    if rates is None:
        log(f"measuring machine rates with {torch.get_num_threads()} threads")
        if quiet is not None:
            wait_for_quiet(quiet, 60.0)
        measured.append(measure_machine(clock=clock))
    samples = measure_requests(models, requests, encoders, repeats, new_tokens, log, quiet, clock=clock)
    if rates is None:
        if quiet is not None:
            wait_for_quiet(quiet, 60.0)
        measured.append(measure_machine(clock=clock))
        rates = best_rates(*measured)
    rows = [_row(r, specs, samples, new_tokens, rates) for r in requests]
    base = rows[-1] if baseline else None
    for row in rows:
        for key in ("ttft_s", "cached_ttft_s", "flops", "roofline_ttft_s", "roofline_cached_s"):
            row[f"speedup_{key}"] = base[key] / row[key] if base and row[key] else None
    report: dict[str, Any] = {
        "machine": rates.to_dict(),
        "rates_measured": [r.to_dict() for r in measured],
        "new_tokens": new_tokens,
        "repeats": repeats,
        "clock": clock,
        "text_tokens": requests[0].text_tokens,
        "weights_mb": {k: v / 2**20 for k, v in weights.items()},
        "encode_s": {k: samples[k].median("encode_s") for k in encoders},
        "rows": rows,
    }
    if batch_sizes:
        report["batching"] = _batching(model, processor, image, prompt, budgets[0], batch_sizes, new_tokens, rates, spec, quiet, clock)
    return report


def _row(request: Any, specs: dict[str, Any], samples: dict[str, Any], new_tokens: int, rates: Any) -> dict[str, Any]:
    """One configuration: medians, the analytic FLOPs, the roofline per column and the ratios."""
    from mqt_vlm.analysis.flops import model_flops
    from mqt_vlm.analysis.roofline import decode_phase, encode_phases, prefill_phase, roofline_seconds

    kind = request.name.split("-", 1)[0]
    spec = specs[kind]
    seq = request.visual_tokens + request.text_tokens
    got = samples[request.name]
    prefill = prefill_phase(spec.llm, seq)
    decode = decode_phase(spec.llm, seq + new_tokens // 2)
    row = {
        "name": request.name,
        "model": kind,
        "visual_tokens": request.visual_tokens,
        "flops": model_flops(spec, request.visual_tokens, request.text_tokens).total,
        "ttft_s": got.median("ttft_s"),
        "roofline_ttft_s": roofline_seconds([*encode_phases(spec), prefill], rates),
        "cached_ttft_s": got.median("cached_ttft_s"),
        "roofline_cached_s": prefill.seconds(rates),
        "decode_s": got.median("decode_s"),
        "roofline_decode_s": decode.seconds(rates),
        "decode_bound": decode.bound(rates),
        "prefill_bound": prefill.bound(rates),
        "peak_extra_mb": (got.median("peak_extra_bytes") or 0) / 2**20,
        "others_busy": got.median("others_busy"),
        "samples": got.values,
    }
    for key, roof in (("ttft_s", "roofline_ttft_s"), ("cached_ttft_s", "roofline_cached_s"), ("decode_s", "roofline_decode_s")):
        row[f"ratio_{key}"] = row[key] / row[roof] if row[key] else None
    return row


def _batching(model: Any, processor: Any, image: Any, prompt: str, m: int, sizes: list[int], new_tokens: int,
              rates: Any, spec: Any, quiet: float | None, clock: str) -> list[dict[str, Any]]:
    """Cached visual tokens, B identical requests in one batch: the weights are read once per step
    for all B sequences, which is what lifts a memory-bound decode off its floor."""
    import torch

    from mqt_vlm.analysis.bench import mqt_request, timed_generate, wait_for_quiet
    from mqt_vlm.analysis.roofline import decode_phase, prefill_phase

    out = []
    for batch in sizes:
        request = mqt_request(model, processor, image, prompt, m, batch=batch)
        with torch.inference_mode():
            cache = model.encode_images(request.pixel_values[:1]).expand(batch, -1, -1)
        request.cache = cache
        if quiet is not None:
            wait_for_quiet(quiet, 60.0)
        timing = timed_generate(model, new_tokens, clock=clock, **request.generate_kwargs(cached=True))
        seq = m + request.text_tokens
        decode = decode_phase(spec.llm, seq + new_tokens // 2, batch)
        out.append({
            "batch": batch,
            "budget": m,
            "prefill_s": timing.ttft_s,
            "roofline_prefill_s": prefill_phase(spec.llm, seq, batch).seconds(rates),
            "decode_tokens_per_s": batch / timing.decode_s_per_token if timing.decode_s_per_token else None,
            "roofline_decode_tokens_per_s": batch / decode.seconds(rates),
            "decode_bound": decode.bound(rates),
        })
    return out


def format_report(report: dict[str, Any]) -> str:
    """Markdown tables: per budget, measured next to roofline and analytic FLOPs; then batching."""
    m = report["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['threads']} torch thread(s), {m.get('clock', 'wall')} clock; peak fp32 matmul {m['peak_flops'] / 1e9:.1f} GFLOP/s "
        f"({m['matmul_size']}^3), read bandwidth {m['bandwidth'] / 1e9:.1f} GB/s (sum of {m['stream_bytes'] >> 20} MiB), "
        f"copy {m['copy_bandwidth'] / 1e9:.1f} GB/s; ridge {m['peak_flops'] / m['bandwidth']:.1f} FLOP/byte.",
        f"Prompt: {report['text_tokens']} text tokens; {report['new_tokens']} new tokens; median of {report['repeats']} "
        f"repeats. Encoder alone (tower + connector): "
        + ", ".join(f"{k} {v:.3f} s" for k, v in report["encode_s"].items() if v is not None) + ".",
        "",
        "| model | visual tokens | TFLOPs | TTFT s | roofline s | ratio | cached TTFT s | roofline s | ratio "
        "| decode ms/tok | roofline ms | ratio | peak +MB | speedup TTFT | FLOPs | roofline | speedup cached | roofline |",
        "|---|" + "---|" * 17,
    ]
    f = lambda v, p=3: "-" if v is None else f"{v:.{p}f}"  # noqa: E731
    for r in report["rows"]:
        lines.append(
            f"| {r['model']} | {r['visual_tokens']} | {r['flops'] / 1e12:.3f} | {f(r['ttft_s'])} | {f(r['roofline_ttft_s'])} "
            f"| {f(r['ratio_ttft_s'], 2)} | {f(r['cached_ttft_s'])} | {f(r['roofline_cached_s'])} | {f(r['ratio_cached_ttft_s'], 2)} "
            f"| {f(r['decode_s'] and 1e3 * r['decode_s'], 1)} | {f(1e3 * r['roofline_decode_s'], 1)} | {f(r['ratio_decode_s'], 2)} "
            f"| {r['peak_extra_mb']:.0f} | {f(r['speedup_ttft_s'], 2)}x | {f(r['speedup_flops'], 2)}x "
            f"| {f(r['speedup_roofline_ttft_s'], 2)}x | {f(r['speedup_cached_ttft_s'], 2)}x | {f(r['speedup_roofline_cached_s'], 2)}x |"
        )
    if report.get("batching"):
        lines += ["", "| batch (cached, m=%d) | prefill s | roofline s | decode tok/s | roofline tok/s | decode bound |" % report["batching"][0]["budget"],
                  "|---|---|---|---|---|---|"]
        for b in report["batching"]:
            lines.append(
                f"| {b['batch']} | {b['prefill_s']:.3f} | {b['roofline_prefill_s']:.3f} | {f(b['decode_tokens_per_s'], 1)} "
                f"| {b['roofline_decode_tokens_per_s']:.1f} | {b['decode_bound']} |"
            )
    return "\n".join(lines)


def bench(
    shape: str = typer.Option("smollm2-clip336", help=f"Model to build: {', '.join(SHAPES)}."),
    model: str | None = typer.Option(None, help="An mqt_vlm folder or builtin:NAME instead of --shape."),
    budgets: str = typer.Option("8,16,64,256", help="Comma-separated visual-token budgets (each 1..M; M = all queries)."),
    layers: int = typer.Option(2, help="Decoder layers of the vicuna7b-clip336 shape."),
    repeats: int = typer.Option(3, help="Repeats per configuration (the median is reported)."),
    new_tokens: int = typer.Option(8, help="Tokens generated per request (decode speed)."),
    batch_sizes: str = typer.Option("1,4", help="Batch sizes for the batched, cached decode ('' to skip)."),
    baseline: bool = typer.Option(True, help="Also measure the LLaVA-style baseline (MLP projector, all patches)."),
    threads: int = typer.Option(0, help="torch intra-op threads (0: the cores this process may use)."),
    image: Path | None = typer.Option(None, help="Image file (default: a fixed noise image; content does not matter)."),
    question: str = typer.Option(DEFAULT_QUESTION, help="Question, put in the vicuna_v1 template with the short-answer suffix."),
    as_json: JsonFlag = False,
    json_out: JsonOut = None,
    quiet: float | None = typer.Option(None, help="Before each measurement wait (up to 60 s) until other processes use at most this fraction of the cores, e.g. 0.1 on a shared machine."),
    clock: str = typer.Option("wall", help="wall (elapsed) or cpu (this thread's CPU time, one torch thread: for a machine other processes keep busy)."),
) -> None:
    """Measured latency and memory per budget, against a LLaVA-style baseline.

    Prefill time, time to first token, decode speed and peak memory per budget, against a
    LLaVA-style baseline sharing the same tower and LM, with the analytic FLOPs speedup and a
    roofline prediction (max of FLOPs / peak matmul rate and bytes / bandwidth, both measured).
    The JSON report holds every sample; progress goes to stderr."""
    import torch

    from mqt_vlm.analysis.roofline import default_threads
    from mqt_vlm.budgets import parse_budgets
    from mqt_vlm.processing.templates import SHORT_ANSWER_SUFFIX

    if clock == "cpu" and threads > 1:
        raise MQTError("--clock cpu times one thread; leave --threads at 0 or 1.")
    parse_budgets(budgets, None)  # a typo fails before the model is built
    torch.set_num_threads(1 if clock == "cpu" else threads or default_threads())
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    if model is not None:
        from mqt_vlm.loading import load_model

        vlm, processor = load_model(model)
        description = model
    else:
        vlm, processor, description = build_shape(shape, layers)
    if image is not None:
        from mqt_vlm.processing.images import load_image

        picture = load_image(image)
    else:
        picture = default_image()
    prompt = processor.format_prompt(f"{question}\n{SHORT_ANSWER_SUFFIX}")
    sizes = [int(s) for s in batch_sizes.split(",") if s.strip()]
    chosen = [int(m) for m in parse_budgets(budgets, vlm.num_queries)]
    report = run_bench(vlm, processor, chosen, picture, prompt, repeats, new_tokens, sizes, baseline, log, quiet=quiet, clock=clock)
    report["model"] = description
    report["command"] = "mqt " + " ".join(sys.argv[1:]) if sys.argv and "mqt" in sys.argv[0] else None
    report["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    emit(report, as_json, json_out, lambda: f"# {description}\n\n{format_report(report)}")
