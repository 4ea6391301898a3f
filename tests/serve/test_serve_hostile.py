"""Hostile input: nothing a client can send stalls the server, fails other requests, or leaks what
exists on the server's disk. Each attack runs next to an ordinary request, which must be answered
normally while the attack is refused quickly with a 4xx that names the limit."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import socketserver
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from mqt_vlm.errors import MQTError
from mqt_vlm.inference import (
    AutoBudgetConfig,
    ConfidenceEscalation,
    GenerationRequest,
    SamplingParams,
    build_prompt,
    generate_batch,
)
from mqt_vlm.serve.config import ServeConfig
from mqt_vlm.serve.images import decode_image, prepad
from mqt_vlm.serve.worker import BatchWorker

QUICK_S = 3.0  # "refused within a second or two", with room for a loaded 2-core machine


def png_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def chat(url: str, body: dict[str, Any], timeout: float = 60) -> httpx.Response:
    """POST with the body encoded as ASCII JSON, so lone surrogates travel as valid \\ud800 escapes."""
    return httpx.post(url + "/v1/chat/completions", content=json.dumps(body).encode(), timeout=timeout,
                      headers={"content-type": "application/json"})


def request_body(model: str, urls: list[str] = (), text: str = "What is this?", **extra: Any) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    content = [*parts, {"type": "text", "text": text}] if urls else text
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 3, "visual_tokens": 4,
            **extra}


@pytest.fixture(scope="module")
def ordinary(photos, model_name):
    return request_body(model_name, [png_url(photos["coffee"].resize((64, 48)))])


def with_bystander(url: str, attack: Any, ordinary: dict[str, Any]) -> tuple[Any, float, httpx.Response]:
    """(the attack's result, its seconds, the ordinary request's response), the two sent together."""
    with ThreadPoolExecutor(2) as pool:
        def timed() -> tuple[Any, float]:
            start = time.monotonic()
            result = attack()
            return result, time.monotonic() - start

        attacked = pool.submit(timed)
        time.sleep(0.05)
        bystander = pool.submit(chat, url, ordinary)
        (result, seconds), answer = attacked.result(), bystander.result()
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] == 3
    return result, seconds, answer


def error_of(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    if code is not None:
        assert error["code"] == code, error
    return error


# ---- images -----------------------------------------------------------------------------------
@pytest.mark.parametrize("size, flag", [((1, 20000), "--max-image-side"), ((1, 500), "--max-image-aspect-ratio"),
                                        ((1001, 1000), "--max-image-pixels")])
def test_image_size_bombs_are_refused_from_the_header(live_server, ordinary, size, flag):
    bomb = png_url(Image.new("RGB", size, (200, 30, 30)))  # a few hundred bytes of PNG
    attack = lambda: chat(live_server.url, request_body("tiny-mqt", [bomb, bomb]))  # noqa: E731
    response, seconds, _ = with_bystander(live_server.url, attack, ordinary)
    error = error_of(response, 400, "image_too_large")
    assert flag in error["message"] and error["param"] == "messages.0.content.0.image_url.url"
    assert seconds < QUICK_S


def test_image_limits_follow_the_config(extra_server, ordinary):
    strict = extra_server(max_image_side=300, max_image_aspect_ratio=2.0)
    wide = png_url(Image.new("RGB", (310, 200)))
    tall = png_url(Image.new("RGB", (50, 120)))
    assert "--max-image-side" in error_of(chat(strict.url, request_body("tiny-mqt", [wide])), 400)["message"]
    assert "--max-image-aspect-ratio" in error_of(chat(strict.url, request_body("tiny-mqt", [tall])), 400)["message"]
    assert chat(strict.url, ordinary).status_code == 200


@pytest.mark.parametrize("size", [(4000, 200), (200, 4000), (640, 480), (56, 56), (57, 300)])
def test_prepad_leaves_the_model_input_unchanged(tiny_serving_model, size):
    """The padding and resize run on a request's thread; the model's thread sees the same pixels."""
    _, processor = tiny_serving_model
    rng = np.random.default_rng(sum(size))
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    small = prepad(image, processor.image_processor)
    assert min(small.size) == processor.image_processor.shortest_edge and small.size[0] == small.size[1]
    expected = processor.image_processor([image])["pixel_values"]
    assert np.array_equal(processor.image_processor([small])["pixel_values"].numpy(), expected.numpy())


def test_wide_images_reach_the_worker_small(tiny_serving_model):
    _, processor = tiny_serving_model
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 200), (9, 9, 9)).save(buffer, "PNG")
    image = decode_image(buffer.getvalue(), ServeConfig(), "p", processor.image_processor)
    assert image.size == (56, 56)  # not a 4000 x 4000 canvas for the model's thread to pad


def test_image_count_is_checked_before_any_image_is_decoded(live_server, ordinary, monkeypatch):
    import mqt_vlm.serve.images as images

    decoded = []
    monkeypatch.setattr(images, "decode_image", lambda *a, **k: decoded.append(1))
    big = png_url(Image.new("RGB", (1000, 1000), (30, 30, 200)))
    response = chat(live_server.url, request_body("tiny-mqt", [big] * 3))  # the test server allows 2
    assert "--max-images" in error_of(response, 400, "too_many_images")["message"]
    assert decoded == []


# ---- prompts ------------------------------------------------------------------------------------
def test_a_huge_prompt_is_refused_before_tokenizing(live_server, ordinary):
    huge = request_body("tiny-mqt", text="word " * 380_000)  # 1.9 MB: under the 2 MB body limit
    response, seconds, _ = with_bystander(live_server.url, lambda: chat(live_server.url, huge), ordinary)
    error = error_of(response, 400, "prompt_too_long")
    assert "--max-prompt-bytes" in error["message"] and "65,536" in error["message"]
    assert seconds < QUICK_S


def test_prompt_limits_in_tokens_and_context_length(live_server, extra_server):
    # ~2000 tokens: under --max-prompt-tokens (4096), but with max_tokens over the tiny LM's 2048 positions
    error = error_of(chat(live_server.url, request_body("tiny-mqt", text="hello " * 1000, max_tokens=64)), 400,
                     "context_length_exceeded")
    assert "2048" in error["message"] and "max_position_embeddings" in error["message"]
    assert chat(live_server.url, request_body("tiny-mqt", text="hello " * 900, max_tokens=64)).status_code == 200
    small = extra_server(max_prompt_tokens=100)
    error = error_of(chat(small.url, request_body("tiny-mqt", text="hello " * 60)), 400, "prompt_too_long")
    assert "--max-prompt-tokens" in error["message"]


def test_the_model_thread_never_tokenizes_a_request(extra_server, ordinary, monkeypatch):
    server = extra_server()

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("tokenized on the model's thread")

    monkeypatch.setattr(server.processor, "tokenize_prompt", forbidden)  # the server tokenizes with its own copy
    auto = {**ordinary, "visual_tokens": "auto"}  # escalation 2 -> 8 -> 16 re-expands, never re-tokenizes
    for body in (ordinary, auto, {**ordinary, "stream": True}):
        assert chat(server.url, body).status_code == 200


# ---- one bad request fails alone -----------------------------------------------------------
@pytest.mark.parametrize("where", ["text", "system", "stop"])
def test_lone_surrogates_get_400_and_their_batch_proceeds(extra_server, ordinary, where, model_name):
    server = extra_server(batch_wait_ms=300.0)  # what arrives within 300 ms shares a batch
    poison = request_body(model_name, text="hi \ud800 there")
    if where == "system":
        poison = request_body(model_name, text="hi")
        poison["messages"].insert(0, {"role": "system", "content": "be \udfff terse"})
    elif where == "stop":
        poison = request_body(model_name, text="hi", stop=["\ud800"])
    with ThreadPoolExecutor(8) as pool:
        innocents = [pool.submit(chat, server.url, ordinary) for _ in range(6)]
        bad = pool.submit(chat, server.url, poison)
        bad_stream = pool.submit(chat, server.url, {**poison, "stream": True})
        answers = [f.result() for f in innocents]
    assert "surrogate" in error_of(bad.result(), 400, "invalid_text")["message"]
    error_of(bad_stream.result(), 400, "invalid_text")  # an HTTP error, not a 200 stream holding an error event
    texts = {a.json()["choices"][0]["message"]["content"] for a in answers}
    assert [a.status_code for a in answers] == [200] * 6 and len(texts) == 1


@pytest.fixture()
def worker(tiny_serving_model):
    model, processor = tiny_serving_model
    worker = BatchWorker(model, processor, None, ConfidenceEscalation(AutoBudgetConfig((2, 16), 1.0)),
                         max_batch_size=8, batch_wait_s=0.3, max_queue=16)
    worker.start()
    yield worker
    worker.stop()


def test_a_request_that_fails_to_prepare_fails_alone(worker, tiny_serving_model, photos):
    model, processor = tiny_serving_model
    params = SamplingParams(max_new_tokens=3)
    good = GenerationRequest(processor.format_prompt("What is this?"), [photos["coffee"]], 4, params)
    poisoned = GenerationRequest(build_prompt([("user", "hi \ud800")], processor), [], 0, params)  # a TypeError
    futures = [worker.submit(good), worker.submit(poisoned), worker.submit(good)]
    with pytest.raises(MQTError, match="could not be prepared"):
        futures[1].result(timeout=60)
    expected = generate_batch(model, processor, [good])[0].token_ids
    assert [f.result(timeout=60).token_ids for f in (futures[0], futures[2])] == [expected, expected]


class _BrokenStreamer:
    def on_text(self, row: int, delta: str) -> None:
        raise RuntimeError("this client's stream broke")

    def on_finish(self, row: int, result: Any) -> None:
        pass


def test_a_row_that_breaks_during_generation_fails_alone(worker, tiny_serving_model, photos):
    model, processor = tiny_serving_model
    params = SamplingParams(max_new_tokens=3)
    good = GenerationRequest(processor.format_prompt("What is this?"), [photos["coffee"]], 4, params)
    futures = [worker.submit(good), worker.submit(good, streamer=_BrokenStreamer()), worker.submit(good)]
    with pytest.raises(RuntimeError, match="stream broke"):
        futures[1].result(timeout=60)
    expected = generate_batch(model, processor, [good])[0].token_ids
    assert [f.result(timeout=60).token_ids for f in (futures[0], futures[2])] == [expected, expected]


def test_streaming_errors_before_the_first_token_are_http_statuses(extra_server, ordinary, live_server):
    stream = {**ordinary, "stream": True}
    error_of(chat(live_server.url, {**stream, "visual_tokens": 99}), 400)
    error_of(chat(live_server.url, {**stream, "messages": [{"role": "user", "content": "x" * 70_000}]}), 400,
             "prompt_too_long")
    # the deadline passes while it is queued: the worker fails it (at 0.8 s) before the first token
    late = extra_server(request_timeout_s=0.3, batch_wait_ms=800.0)
    error_of(chat(late.url, stream), 503, "timeout")


# ---- remote images and local paths (only with --allow-remote-images) ---------------------------
class _Drip(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            self.request.recv(65536)
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(30):
                self.request.sendall(b"\x89")
                time.sleep(0.5)
        except OSError:
            pass


@pytest.fixture()
def drip_url():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Drip)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/slow.png"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("limits, status, code", [(dict(remote_timeout_s=1.0), 400, "image_fetch_failed"),
                                                  (dict(request_timeout_s=1.5), 503, "timeout")])
def test_a_dripping_image_host_cannot_hold_a_request(extra_server, ordinary, drip_url, limits, status, code):
    server = extra_server(allow_remote_images=True, **limits)
    attack = lambda: chat(server.url, request_body("tiny-mqt", [drip_url]))  # noqa: E731
    response, seconds, _ = with_bystander(server.url, attack, ordinary)
    assert "did not finish within" in error_of(response, status, code)["message"]
    assert seconds < 1.5 + QUICK_S


def test_local_paths_are_regular_files_and_errors_do_not_say_which_paths_exist(extra_server, ordinary, tmp_path,
                                                                              photos):
    server = extra_server(allow_remote_images=True)
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    photos["coffee"].resize((64, 48)).save(tmp_path / "real.png")
    paths = ["/no/such/dir/x.png", str(tmp_path), "/dev/zero", str(fifo), "/proc/self/mem", str(tmp_path / "notes.png"),
             str(tmp_path / "empty.png"), f"file://{tmp_path}/missing.png", "/etc/passwd\x00.png"]
    messages = set()
    for path in paths:
        start = time.monotonic()
        error = error_of(chat(server.url, request_body("tiny-mqt", [path])), 400, "invalid_image_url")
        assert time.monotonic() - start < QUICK_S, path  # a FIFO must not block the read
        messages.add(error["message"])
    assert len(messages) == 1 and "Cannot read an image at that path" in messages.pop()
    assert chat(server.url, request_body("tiny-mqt", [str(tmp_path / "real.png")])).status_code == 200
    assert chat(server.url, ordinary).status_code == 200


# ---- the HTTP surface ---------------------------------------------------------------------------
def test_api_docs_are_off_unless_asked_for(live_server, extra_server):
    for path in ("/docs", "/redoc", "/openapi.json"):
        error_of(httpx.get(live_server.url + path), 404)
    docs = extra_server(api_docs=True)
    assert [httpx.get(docs.url + p).status_code for p in ("/docs", "/redoc", "/openapi.json")] == [200, 200, 200]


@pytest.fixture()
def timed_server(tiny_serving_model, live_server):
    """A server started with `uvicorn_options`, as `mqt serve` starts it, with short connection limits."""
    import uvicorn

    from mqt_vlm.serve.app import create_app
    from mqt_vlm.serve.limits import uvicorn_options

    model, processor = tiny_serving_model
    config = replace(live_server.app.state.mqt.config, header_timeout_s=0.5, body_timeout_s=0.5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(model, processor, config), host="127.0.0.1", port=port,
                                           log_level="warning", **uvicorn_options(config)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(timeout=15)


def until_closed(port: int, prefix: bytes, drip: bytes = b"", cap_s: float = 5.0) -> tuple[float, bytes]:
    """Send `prefix`, then a byte of `drip` every 0.1 s: (seconds until the server hung up, what it said).
    (A server that closes while bytes are still arriving resets the connection: what it said may be lost.)"""
    start = time.monotonic()
    received = b""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(0.1)
        sock.sendall(prefix)
        i = 0
        while time.monotonic() - start < cap_s:
            try:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
            except TimeoutError:
                pass
            except ConnectionResetError:
                break
            try:
                if drip:
                    sock.sendall(drip[i % len(drip):][:1])
                    i += 1
            except OSError:
                break
        return time.monotonic() - start, received


POST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def test_slow_connections_are_closed(timed_server, ordinary):
    port = timed_server  # header and body timeouts of 0.5 s
    seconds, said = until_closed(port, b"")  # connects and says nothing
    assert seconds < 2.0 and said == b""
    seconds, said = until_closed(port, POST)  # half a head
    assert seconds < 2.0 and said.startswith(b"HTTP/1.1 408") and b"--header-timeout" in said
    seconds, _ = until_closed(port, POST, drip=b"X-Slow: aaaa")  # a head that never ends
    assert seconds < 2.0
    head = POST + b"Content-Length: 9999\r\n\r\n{"
    seconds, said = until_closed(port, head)  # a tenth of a body
    assert seconds < 2.0 and said.startswith(b"HTTP/1.1 408") and b"--body-timeout" in said
    seconds, _ = until_closed(port, head, drip=b" ")  # a body that never ends
    assert seconds < 2.0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:  # ordinary clients, keep-alive
        for _ in range(2):
            assert client.post("/v1/chat/completions", json=ordinary).status_code == 200
            time.sleep(0.2)
