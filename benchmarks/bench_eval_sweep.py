"""Time of an `mqt eval` sweep over 8 budgets, and how many images go through the vision tower.

The model is MQT-LLaVA's shape where it matters for this measurement: a CLIP-L/336-shaped vision
tower (width 1024, 24x24 patches, 16 heads; random weights, cut to `--layers` layers so a CPU run
takes minutes; the MQT reads layer -2 as released), an MQT with M = 256, and a small random
LLaMA-style LM (width 256, 2 layers, LLaMA's 32000-token vocabulary), so the figure is about the
part of the cost the encode-once sweep removes, not about a 7B prefill. The questions are the
synthetic benchmark's (`mqt data synth`), one per image (the first question of each of `--images`
images, so no image is shared between questions and the count is budgets x images before, images
after), padded and resized to 336 px as for CLIP-L.

Run it with the source tree to measure (the before/after figures in BENCHMARKS.md ran it on the
commit before the encode-once sweep, exported with `git archive`, and on the one after):

    PYTHONPATH=src .venv/bin/python benchmarks/bench_eval_sweep.py --json-out sweep.json

It prints one JSON object (and writes it to --json-out): seconds for the whole sweep, images through
the tower (counted with a forward hook on the tower's embeddings), questions, budgets, the machine
and its load average at the start and the end (the machine may be shared: the load says how much).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from machine_info import machine

BUDGETS = "2,4,8,16,36,64,144,256"


def clip_l_336(layers: int) -> dict[str, Any]:
    return {"model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096,
            "num_hidden_layers": layers, "num_attention_heads": 16, "image_size": 336, "patch_size": 14}


SMALL_LM = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 32000, "max_position_embeddings": 2048,
            "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}


def build(layers: int) -> tuple[Any, Any]:
    from mqt_vlm.assets import llama_tokenizer_dir
    from mqt_vlm.modeling.builder import build_model

    tokenizer = str(llama_tokenizer_dir(Path(tempfile.gettempdir()) / "mqt_vlm_cache"))
    torch.manual_seed(0)
    model, processor = build_model(clip_l_336(layers), SMALL_LM, tokenizer, {"num_queries": 256, "num_heads": 16})
    return model.eval(), processor


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", default=BUDGETS, help="comma-separated budgets of the sweep")
    parser.add_argument("--layers", type=int, default=4, help="vision tower layers (CLIP-L has 24)")
    parser.add_argument("--images", type=int, default=10, help="questions, one per image")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=4)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch threads")
    parser.add_argument("--json-out", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from mqt_vlm.data.synthetic import SynthConfig, write_dataset
    from mqt_vlm.eval.benchmarks import get_benchmark

    def one_per_image(items: list, n: int) -> list:
        firsts = {}
        for item in items:
            firsts.setdefault(str(item.image), item)
        return list(firsts.values())[:n]
    from mqt_vlm.eval.generator import ModelGenerator
    from mqt_vlm.eval.sweep import SweepConfig, run_sweep

    budgets = [int(b) for b in args.budgets.split(",")]
    result: dict[str, Any] = {"machine": machine(), "date": datetime.date.today().isoformat(),
                              "command": "python benchmarks/bench_eval_sweep.py " + " ".join(argv or sys.argv[1:]),
                              "budgets": budgets, "tower_layers": args.layers}
    model, processor = build(args.layers)
    images = []
    hook = model.vision_tower.embeddings.register_forward_hook(lambda _m, _i, out: images.append(out.shape[0]))
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data", Path(tmp) / "out"
        write_dataset(data, SynthConfig(seed=7, n_images=12 * args.images), progress=False)  # a tenth is test
        benchmark = dataclasses.replace(get_benchmark("synthetic"), limit=one_per_image)
        config = SweepConfig(benchmarks=[benchmark], budgets=budgets, data_root=data, out=out,
                             model="bench", limit=args.images, batch_size=args.batch_size,
                             max_new_tokens=args.max_new_tokens, progress=False, plots=False)
        start = time.perf_counter()
        run_sweep(config, ModelGenerator(model, processor), echo=lambda _: None)
        seconds = time.perf_counter() - start
        lines = [json.loads(line) for line in (out / "predictions" / "synthetic" / f"m{budgets[0]:03d}.jsonl")
                 .read_text().splitlines()]
        answers = {m: [json.loads(line)["text"] for line in (out / "predictions" / "synthetic" / f"m{m:03d}.jsonl")
                       .read_text().splitlines()] for m in budgets}
    hook.remove()
    result.update(seconds=round(seconds, 2), questions=len(lines), tower_passes=len(images),
                  images_through_tower=sum(images), answers=answers)
    result["machine"]["load_average_end"] = os.getloadavg()
    text = json.dumps(result, indent=1)
    if args.json_out is not None:
        args.json_out.write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
