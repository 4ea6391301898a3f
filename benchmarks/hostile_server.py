"""Hostile clients against a live `mqt serve`: does any request stall the server, fail other
requests, or leak what exists on the server's disk?

Starts `mqt serve` (a subprocess, as a user runs it) on a tiny random model twice: with default
options, and with `--allow-remote-images --request-timeout 3` for the cases that need remote images (both
with `--batch-wait-ms 50`, so that requests sent together share a batch).
Each case sends its attack while an ordinary request (one small image, 4 tokens) runs alongside, and
records the attack's HTTP status, the time until the server refused it (or closed the connection),
the server process's peak RSS during the case, and whether the ordinary request was answered (and
how fast).

    .venv/bin/python benchmarks/hostile_server.py --json-out hostile.json
    PYTHONPATH=/tmp/before/src .venv/bin/python benchmarks/hostile_server.py  # an older checkout

Only options that every version of `mqt serve` has are used, so one script measures before and
after a fix. The `aspect_60000` case is off unless `--include-oom-case`: on a server without the
long-side limit it pads a 1 x 60000 image to a 60000^2 canvas (~14 GB), which can take the machine down.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

ORDINARY_TIMEOUT_S = 120.0
SLOW_CAP_S = 40.0  # how long a slow-connection case waits for the server to hang up
BATCHING = ("--batch-wait-ms", "50")  # so that requests sent together share a batch


# ---- the server ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save_tiny_model(folder: Path) -> Path:
    import torch

    from mqt_vlm.assets import llama_tokenizer_dir
    from mqt_vlm.modeling.builder import build_from_preset

    torch.manual_seed(0)
    model, processor = build_from_preset("tiny", str(llama_tokenizer_dir(folder / "tok")))
    model.save_pretrained(folder / "tiny")
    processor.save_pretrained(folder / "tiny")
    return folder / "tiny"


@dataclass
class Server:
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(model: Path, *options: str) -> Server:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-c", "from mqt_vlm.cli.main import main; main()", "serve", "--model", str(model),
               "--port", str(port), "--log-level", "warning", *options]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"mqt serve exited with {process.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return Server(url, process)
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("mqt serve did not come up")
        time.sleep(0.25)


class RSSSampler:
    """Peak resident memory of a process, sampled every 10 ms from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss_kb(self) -> int:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self.rss_kb())
            time.sleep(0.01)

    def __enter__(self) -> RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


# ---- requests ----------------------------------------------------------------------------------
def png_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def body(model: str, urls: list[str], text: str = "What is this?", **extra: Any) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    content = [*parts, {"type": "text", "text": text}] if urls else text
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 4,
            "visual_tokens": 4, **extra}


def post_raw(url: str, payload: dict[str, Any], timeout: float = ORDINARY_TIMEOUT_S) -> httpx.Response:
    """POST JSON encoded with ensure_ascii (so lone surrogates travel as valid \\ud800 escapes)."""
    return httpx.post(url + "/v1/chat/completions", content=json.dumps(payload).encode(), timeout=timeout,
                      headers={"content-type": "application/json"})


@dataclass
class Outcome:
    status: str  # HTTP status(es), or what happened to the connection
    detail: str = ""


@dataclass
class Row:
    case: str
    server: str
    status: str
    refusal_s: float
    peak_rss_mb: float
    ordinary_ok: str
    ordinary_s: float
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except Exception:  # noqa: BLE001 - not JSON: the status alone says enough
        return ""


def describe(response: httpx.Response) -> Outcome:
    return Outcome(str(response.status_code), f"{error_code(response)}: {response.text[:160]}")


# ---- slow peers ------------------------------------------------------------------------------
def time_until_closed(url: str, prefix: bytes, drip: bytes, cap_s: float = SLOW_CAP_S) -> Outcome:
    """Send `prefix`, then one byte of `drip` per second; when does the server hang up or answer?"""
    host, port = url.removeprefix("http://").split(":")
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=cap_s) as sock:
        sock.settimeout(1.0)
        if prefix:
            sock.sendall(prefix)
        i = 0
        while time.monotonic() - start < cap_s:
            try:
                reply = sock.recv(4096)
                first = reply.split(b"\r\n", 1)[0].decode(errors="replace")
                return Outcome("closed" if not reply else first.split(" ")[1] if " " in first else first,
                               f"after {time.monotonic() - start:.1f} s: {first or 'connection closed'}")
            except TimeoutError:
                pass
            except ConnectionResetError:  # closed while bytes were still arriving: what it said is lost
                return Outcome("closed", f"after {time.monotonic() - start:.1f} s (reset)")
            try:
                if drip:
                    sock.sendall(drip[i % len(drip):i % len(drip) + 1])
                    i += 1
            except OSError:
                return Outcome("closed", f"after {time.monotonic() - start:.1f} s (send failed)")
    return Outcome("open", f"still open after {cap_s:.0f} s")


class DripHandler(socketserver.BaseRequestHandler):
    """An image host that sends its PNG at one byte per second."""

    def handle(self) -> None:
        self.request.settimeout(5)
        try:
            self.request.recv(65536)
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(120):
                self.request.sendall(b"\x89")
                time.sleep(1.0)
        except OSError:
            pass


class DripServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


# ---- the cases ---------------------------------------------------------------------------------
def make_cases(model: str, huge_mb: float, include_oom: bool, drip_url: str) -> list[tuple[str, str, Callable]]:
    thin = png_url(Image.new("RGB", (1, 20000), (200, 30, 30)))
    big_square = png_url(Image.new("RGB", (4000, 4000), (30, 30, 200)))

    def aspect_bomb(url: str) -> Outcome:
        return describe(post_raw(url, body(model, [thin] * 4)))

    def aspect_60000(url: str) -> Outcome:
        return describe(post_raw(url, body(model, [png_url(Image.new("RGB", (1, 60000)))])))

    def huge_prompt(url: str) -> Outcome:
        text = "word " * int(huge_mb * 1e6 / 5)
        return describe(post_raw(url, body(model, [], text=text), timeout=300))

    def too_many_images(url: str) -> Outcome:
        return describe(post_raw(url, body(model, [big_square] * 5)))

    def context_length(url: str) -> Outcome:
        text = "hello " * 1200  # 2402 tokens: under --max-prompt-tokens (4096), over the tiny LM's 2048 positions
        return describe(post_raw(url, body(model, [], text=text, max_tokens=64)))

    def surrogate(url: str) -> Outcome:
        return describe(post_raw(url, body(model, [], text="hi \ud800 there")))

    def surrogate_stream(url: str) -> Outcome:
        payload = json.dumps(body(model, [], text="hi \ud800 there", stream=True)).encode()
        with httpx.stream("POST", url + "/v1/chat/completions", content=payload, timeout=ORDINARY_TIMEOUT_S,
                          headers={"content-type": "application/json"}) as response:
            text = response.read().decode(errors="replace")
        has_error_event = '"error"' in text and response.headers.get("content-type", "").startswith("text/event-stream")
        prefix = "error event in a 200 stream: " if has_error_event else ""
        return Outcome(str(response.status_code), prefix + text[:160])

    def remote_drip(url: str) -> Outcome:
        return describe(post_raw(url, body(model, [drip_url])))

    def proc_self_mem(url: str) -> Outcome:
        return describe(post_raw(url, body(model, ["/proc/self/mem"])))

    def path_probe(url: str) -> Outcome:
        paths = {"missing": "/no/such/dir/x.png", "directory": "/etc", "device": "/dev/zero",
                 "unreadable": "/etc/shadow", "fifo": _fifo()}
        answers = {}
        for name, path in paths.items():
            response = post_raw(url, body(model, [path]), timeout=30)
            answers[name] = (response.status_code, response.json().get("error", {}).get("message", "")
                             if response.headers.get("content-type", "").startswith("application/json") else "")
        messages = {m for _, m in answers.values()}
        statuses = "/".join(str(s) for s, _ in answers.values())
        leak = "distinct messages" if len(messages) > 1 else "one message"
        return Outcome(statuses, f"{leak} for {', '.join(paths)}: " + " | ".join(f"{k}: {s} {m[:50]}"
                                                                                 for k, (s, m) in answers.items()))

    def api_docs(url: str) -> Outcome:
        statuses = [httpx.get(url + path, timeout=10).status_code for path in ("/docs", "/redoc", "/openapi.json")]
        return Outcome("/".join(map(str, statuses)), "/docs, /redoc, /openapi.json")

    def silent_connection(url: str) -> Outcome:
        return time_until_closed(url, b"", b"")

    def slow_headers(url: str) -> Outcome:
        return time_until_closed(url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n", b"X-Slow: aaaaaaaaaaaaaaaa")

    def slow_body(url: str) -> Outcome:
        head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n{")
        return time_until_closed(url, head, b" ")

    cases: list[tuple[str, str, Callable]] = [
        ("aspect_bomb_4x1x20000", "default", aspect_bomb),
        ("huge_prompt", "default", huge_prompt),
        ("lone_surrogate", "default", surrogate),
        ("lone_surrogate_stream", "default", surrogate_stream),
        ("too_many_images", "default", too_many_images),
        ("context_length", "default", context_length),
        ("api_docs", "default", api_docs),
        ("silent_connection", "default", silent_connection),
        ("slow_headers", "default", slow_headers),
        ("slow_body", "default", slow_body),
        ("remote_drip", "remote", remote_drip),
        ("proc_self_mem", "remote", proc_self_mem),
        ("path_probe", "remote", path_probe),
    ]
    if include_oom:
        cases.insert(1, ("aspect_1x60000", "default", aspect_60000))
    return cases


_FIFO: list[str] = []


def _fifo() -> str:
    if not _FIFO:
        path = os.path.join(tempfile.mkdtemp(), "fifo.png")
        os.mkfifo(path)
        _FIFO.append(path)
    return _FIFO[0]


# ---- running -----------------------------------------------------------------------------------
def settle(url: str, ordinary: dict[str, Any]) -> None:
    """Wait until the server answers an ordinary request again (a previous case may still hold it)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if post_raw(url, ordinary, timeout=60).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)


def run_case(name: str, server_name: str, server: Server, attack: Callable[[str], Outcome],
             ordinary: dict[str, Any]) -> Row:
    settle(server.url, ordinary)
    result: dict[str, Any] = {}
    innocents = 8 if name.startswith("lone_surrogate") and not name.endswith("stream") else 1

    barrier = threading.Barrier(1 + innocents) if innocents > 1 else None

    def do_attack() -> None:
        if barrier is not None:
            barrier.wait()
        start = time.monotonic()
        try:
            result["outcome"] = attack(server.url)
        except Exception as exc:  # noqa: BLE001 - a transport failure is an outcome too
            result["outcome"] = Outcome(type(exc).__name__, str(exc)[:160])
        result["attack_s"] = time.monotonic() - start

    def do_ordinary(i: int) -> None:
        if barrier is not None:
            barrier.wait()
        start = time.monotonic()
        try:
            response = post_raw(server.url, ordinary)
            ok = response.status_code == 200 and bool(response.json()["choices"][0]["message"]["content"] is not None)
        except Exception:  # noqa: BLE001
            ok = False
        result[f"ordinary{i}"] = (ok, time.monotonic() - start)

    with RSSSampler(server.process.pid) as rss:
        baseline = rss.rss_kb()
        attacker = threading.Thread(target=do_attack)
        attacker.start()
        if barrier is None:
            time.sleep(0.2)  # the attack first, then an ordinary client (a poison case: all at once)
        others = [threading.Thread(target=do_ordinary, args=(i,)) for i in range(innocents)]
        for t in others:
            t.start()
        for t in [attacker, *others]:
            t.join()
    answers = [result[f"ordinary{i}"] for i in range(innocents)]
    ok = sum(a[0] for a in answers)
    outcome: Outcome = result["outcome"]
    return Row(name, server_name, outcome.status, round(result["attack_s"], 2), round(rss.peak_kb / 1024, 0),
               f"{ok}/{innocents}" if innocents > 1 else ("yes" if ok else "NO"),
               round(max(a[1] for a in answers), 2), outcome.detail,
               {"baseline_rss_mb": round(baseline / 1024, 0)})


def table(rows: list[Row]) -> str:
    lines = ["| case | server | HTTP status | time to refusal (s) | server peak RSS (MB) | ordinary request ok | "
             "ordinary latency (s) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.case} | {r.server} | {r.status} | {r.refusal_s:.2f} | {r.peak_rss_mb:.0f} | "
                     f"{r.ordinary_ok} | {r.ordinary_s:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json-out", type=Path, default=None, help="also write the rows (with details) as JSON")
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--huge-prompt-mb", type=float, default=15.0, help="size of the huge-prompt body")
    parser.add_argument("--include-oom-case", action="store_true", help="also send a 1 x 60000 image (see above)")
    args = parser.parse_args()

    import mqt_vlm

    drip = DripServer(("127.0.0.1", 0), DripHandler)
    threading.Thread(target=drip.serve_forever, daemon=True).start()
    drip_url = f"http://127.0.0.1:{drip.server_address[1]}/slow.png"
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_tiny_model(Path(tmp))
        ordinary = body("tiny", [png_url(Image.new("RGB", (64, 48), (120, 200, 40)))])
        cases = make_cases("tiny", args.huge_prompt_mb, args.include_oom_case, drip_url)
        if args.cases:
            wanted = set(args.cases.split(","))
            cases = [c for c in cases if c[0] in wanted]
        needed = {server for _, server, _ in cases}
        servers: dict[str, Server] = {}
        rows: list[Row] = []
        try:
            if "default" in needed:
                servers["default"] = start_server(model_dir, *BATCHING)
            if "remote" in needed:
                remote = ("--allow-remote-images", "--request-timeout", "3")
                servers["remote"] = start_server(model_dir, *BATCHING, *remote)
            for name, server_name, attack in cases:
                row = run_case(name, server_name, servers[server_name], attack, ordinary)
                print(f"{row.case}: {row.status} in {row.refusal_s:.2f} s, peak RSS {row.peak_rss_mb:.0f} MB, "
                      f"ordinary {row.ordinary_ok} ({row.ordinary_s:.2f} s); {row.detail[:200]}", file=sys.stderr)
                rows.append(row)
        finally:
            for server in servers.values():
                server.stop()
            drip.shutdown()
    print(table(rows))
    if args.json_out:
        args.json_out.write_text(json.dumps({"mqt_vlm": str(Path(mqt_vlm.__file__).parent), "cpus": os.cpu_count(),
                                             "rows": [asdict(r) for r in rows]}, indent=2))


if __name__ == "__main__":
    main()
