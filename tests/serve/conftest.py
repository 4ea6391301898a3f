"""A live `mqt serve` app on 127.0.0.1 (random free port, uvicorn in a thread) over a tiny model,
started once for the serve tests and stopped at the end, plus helpers to build requests."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from PIL import Image

from mqt_vlm.inference.auto_budget import AutoBudgetConfig
from mqt_vlm.serve.config import ServeConfig

MODEL_NAME = "tiny-mqt"
TEST_CONFIG = dict(
    model_name=MODEL_NAME,
    max_body_bytes=2 * 1024 * 1024,
    max_image_bytes=2 * 1024 * 1024,
    max_image_pixels=1_000_000,
    max_images_per_request=2,
    max_tokens_limit=64,
    default_max_tokens=6,
    request_timeout_s=60.0,
    max_batch_size=16,
    batch_wait_ms=30.0,
    auto=AutoBudgetConfig((2, 8, 16), threshold=0.9),  # a random model is never that sure: 2 -> 8 -> 16
)


@dataclass
class LiveServer:
    url: str
    model: Any
    processor: Any
    app: Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def data_url(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def image_message(url: str | list[str], question: str) -> list[dict[str, Any]]:
    urls = [url] if isinstance(url, str) else url
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return [{"role": "user", "content": [*parts, {"type": "text", "text": question}]}]


@pytest.fixture(scope="session")
def tiny_serving_model(llama_tokenizer_dir):
    from mqt_vlm.modeling.builder import build_from_preset

    torch.manual_seed(0)
    model, processor = build_from_preset("tiny", str(llama_tokenizer_dir))
    yield model.eval(), processor


def start_server(app: Any) -> tuple[Any, threading.Thread, str]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def live_server(tiny_serving_model):
    from mqt_vlm.serve.app import create_app

    model, processor = tiny_serving_model
    app = create_app(model, processor, ServeConfig(**TEST_CONFIG))
    server, thread, url = start_server(app)
    yield LiveServer(url, model, processor, app)
    server.should_exit = True
    thread.join(timeout=15)
    assert not thread.is_alive(), "the server did not shut down"


@pytest.fixture()
def extra_server(tiny_serving_model):
    """Start another server on the same model with some settings changed: start(**overrides) -> LiveServer."""
    from mqt_vlm.serve.app import create_app

    model, processor = tiny_serving_model
    running = []

    def start(**overrides: Any) -> LiveServer:
        app = create_app(model, processor, ServeConfig(**{**TEST_CONFIG, **overrides}))
        server, thread, url = start_server(app)
        running.append((server, thread))
        return LiveServer(url, model, processor, app)

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="session")
def client(live_server):
    import openai

    with openai.OpenAI(base_url=live_server.url + "/v1", api_key="unused", max_retries=0, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def to_data_url():
    """image -> base64 data URL (PNG unless told)."""
    return data_url


@pytest.fixture(scope="session")
def user_message():
    """(url or urls, question) -> OpenAI messages with one user turn: images first, then the text."""
    return image_message


@pytest.fixture(scope="session")
def reference(live_server):
    """The in-process answer (generate_batch, no server) that a request should get."""
    from mqt_vlm.inference import GenerationRequest, SamplingParams, build_prompt, generate_batch

    def answer(images: list[Image.Image], question: str, m: int, max_tokens: int = 6, **params: Any) -> Any:
        text = "".join("<image>\n" for _ in images) + question
        prompt = build_prompt([("user", text)], live_server.processor)
        request = GenerationRequest(prompt, images, m, SamplingParams(max_new_tokens=max_tokens, **params))
        return generate_batch(live_server.model, live_server.processor, [request])[0]

    return answer


@pytest.fixture(scope="session")
def model_name() -> str:
    return MODEL_NAME
