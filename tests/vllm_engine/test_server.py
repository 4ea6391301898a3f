"""vLLM's OpenAI server (`python -m vllm.entrypoints.openai.api_server`) on a tiny MQT model, hit by
the official `openai` client with a budget per request."""

from __future__ import annotations

import base64
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# a submodule, so that only a real vLLM install satisfies it
pytest.importorskip("vllm.entrypoints.llm", reason="vLLM is not installed here; `make test-vllm` builds .venv-vllm and runs these")

import httpx  # noqa: E402
import openai  # noqa: E402
from conftest import KV_CACHE_BYTES  # noqa: E402
from PIL import Image  # noqa: E402

from mqt_vlm.inference.batch import generate_batch  # noqa: E402
from mqt_vlm.inference.params import GenerationRequest, SamplingParams  # noqa: E402

pytestmark = pytest.mark.slow
MODEL_NAME = "tiny-mqt"
QUESTION = "What is in the image?"
MAX_TOKENS = 8
STARTUP_S = 400


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _messages(image: Image.Image) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": _data_url(image)}},
        {"type": "text", "text": QUESTION},
    ]}]


def server_command(model: Path, port: int) -> list[str]:
    """The documented command (docs/vllm.md), sized for a 2-core CPU."""
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model), "--served-model-name", MODEL_NAME,
        "--tokenizer-mode", "mqt", "--trust-request-mm-kwargs",
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32", "--enforce-eager", "--max-model-len", "512", "--max-num-seqs", "8",
        "--kv-cache-memory-bytes", str(KV_CACHE_BYTES), "--seed", "0",
    ]


@pytest.fixture(scope="module")
def server(tiny_vllm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with open(log, "w") as out:
        process = subprocess.Popen(server_command(tiny_vllm_dir, port), env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert process.poll() is None, f"vLLM server exited:\n{log.read_text()[-4000:]}"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"vLLM server did not come up in {STARTUP_S} s:\n{log.read_text()[-4000:]}"
            time.sleep(1)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=120)


def _ask(client: openai.OpenAI, image: Image.Image, budget: object = None) -> Any:
    extra: dict[str, Any] = {"return_token_ids": True}  # vLLM's extension: prompt and answer token ids
    if budget is not None:
        extra["mm_processor_kwargs"] = {"num_visual_tokens": budget}
    return client.chat.completions.create(model=MODEL_NAME, messages=_messages(image), max_tokens=MAX_TOKENS,
                                          temperature=0.0, extra_body=extra)


def test_per_request_budgets_match_hf(client, hf_model, photos) -> None:
    model, processor = hf_model
    prompt = processor.format_prompt(QUESTION)  # what the saved chat template renders
    answers = set()
    for m in (1, 4, 16):
        response = _ask(client, photos["chelsea"], m)
        assert response.prompt_token_ids == processor.tokenize_prompt(prompt, m)  # released ids, BOS first
        assert response.usage.prompt_tokens == len(response.prompt_token_ids)  # the m image tokens are counted
        expected = generate_batch(model, processor, [
            GenerationRequest(prompt, [photos["chelsea"]], m, SamplingParams(max_new_tokens=MAX_TOKENS))])[0]
        assert response.choices[0].token_ids == expected.token_ids
        # vLLM keeps the first token's leading space ("▁Silva" -> " Silva"); `mqt serve` strips it
        assert response.choices[0].message.content.strip() == expected.text.strip()
        answers.add(tuple(expected.token_ids))
    assert len(answers) > 1  # the budget changes the answer


def test_default_budget(client, hf_model, photos) -> None:
    model, processor = hf_model
    response = _ask(client, photos["coffee"])
    budget = model.config.default_num_visual_tokens
    assert response.usage.prompt_tokens == len(processor.tokenize_prompt(processor.format_prompt(QUESTION), budget))


@pytest.mark.parametrize(("budget", "message"), [
    (0, "must be in 1..16"), (17, "must be in 1..16"), ("x", "must be an int in 1..16"),
])
def test_bad_budgets_are_400(client, photos, budget: object, message: str) -> None:
    with pytest.raises(openai.BadRequestError, match=message):
        _ask(client, photos["chelsea"], budget)
    assert _ask(client, photos["chelsea"], 2).usage.completion_tokens >= 1  # the server is still serving
