"""`mqt serve` as a user runs it: a subprocess on a saved model, hit by the openai client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import openai
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mqt_serve_command(tiny_serving_model, tmp_path, photos, to_data_url, user_message):
    model, processor = tiny_serving_model
    folder = tmp_path / "my-tiny"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", "from mqt_vlm.cli.main import main; main()", "serve", "--model", str(folder),
               "--port", str(port), "--max-images", "1", "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "mqt serve did not come up"
            time.sleep(0.25)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["my-tiny"]  # named after the folder
        response = client.chat.completions.create(
            model="my-tiny", messages=user_message(to_data_url(photos["coffee"]), "What is this?"), max_tokens=4,
            extra_body={"visual_tokens": 5})
        assert response.usage.visual_tokens == 5 and response.usage.completion_tokens == 4
        with pytest.raises(openai.BadRequestError, match="too_many_images|At most 1 images"):
            client.chat.completions.create(model="my-tiny", max_tokens=2,
                                           messages=user_message([to_data_url(photos["coffee"])] * 2, "Two?"))
        with pytest.raises(openai.BadRequestError, match="allow-remote-images"):
            client.chat.completions.create(model="my-tiny", max_tokens=2,
                                           messages=user_message("http://127.0.0.1:9/x.png", "Remote?"))
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
