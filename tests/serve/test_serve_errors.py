"""Every bad request gets the right 4xx in the OpenAI error shape, limits give 413/503, and the
server stays healthy and correct afterwards."""

from __future__ import annotations

import base64
import threading
import time

import httpx
import openai
import pytest
from PIL import Image

from mqt_vlm.inference.auto_budget import AutoBudgetConfig


def post(url: str, body: object, **kwargs) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=60, **kwargs)


def assert_error(response: httpx.Response, status: int, code: str | None = None, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["type"] == ("invalid_request_error" if status < 500 else "server_error")
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return error


def b64_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def good(photos, to_data_url, user_message, model_name):
    """A valid body; tests break one thing at a time."""
    return {"model": model_name, "messages": user_message(to_data_url(photos["coffee"]), "What is this?"),
            "max_tokens": 3, "visual_tokens": 4}


def with_image(good: dict, url: str) -> dict:
    body = {**good, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                               {"type": "text", "text": "q"}]}]}
    return body


def test_bad_images(live_server, good, to_data_url):
    url = live_server.url
    assert_error(post(url, with_image(good, "data:image/png;base64,@@not base64@@")), 400, "invalid_base64",
                 "messages.0.content.0.image_url.url")
    assert_error(post(url, with_image(good, b64_url(b"hello, this is text"))), 400, "invalid_image")
    assert_error(post(url, with_image(good, "data:text/plain;base64,aGVsbG8=")), 400, "invalid_image_url")
    assert_error(post(url, with_image(good, "data:image/png,rawdata")), 400, "invalid_image_url")
    assert_error(post(url, with_image(good, b64_url(b""))), 400)
    huge = to_data_url(Image.new("RGB", (1200, 1000), (10, 20, 30)))  # 1.2 MP > 1 MP limit, ~5 kB of PNG
    error = assert_error(post(url, with_image(good, huge)), 400, "image_too_large")
    assert "1,200,000" in error["message"]
    png = base64.b64decode(to_data_url(Image.new("RGB", (8, 8))).split(",")[1])
    assert_error(post(url, with_image(good, b64_url(png[: len(png) // 2]))), 400, "invalid_image")  # truncated


def test_remote_urls_and_local_paths_are_refused(live_server, good, tmp_path, photos):
    path = tmp_path / "secret.png"
    photos["coffee"].save(path)
    for target in ("http://127.0.0.1:1/cat.png", "https://example.com/cat.png", f"file://{path}", str(path)):
        error = assert_error(post(live_server.url, with_image(good, target)), 400, "remote_images_disabled")
        assert "--allow-remote-images" in error["message"]
    assert_error(post(live_server.url, with_image(good, "ftp://x/y.png")), 400, "invalid_image_url")


@pytest.mark.parametrize("budget", [0, 17, -3, "x", "16", 4.0, True, None.__class__.__name__, [4]])
def test_bad_budgets(live_server, good, budget):
    error = assert_error(post(live_server.url, {**good, "visual_tokens": budget}), 400, param="visual_tokens")
    assert "1..16" in error["message"]


def test_bad_bodies(live_server, good, user_message, to_data_url, photos):
    url = live_server.url
    assert_error(post(url, {k: v for k, v in good.items() if k != "messages"}), 400, "invalid_request", "messages")
    assert_error(post(url, {**good, "messages": []}), 400, "invalid_request", "messages")
    assert_error(httpx.post(url + "/v1/chat/completions", content=b"{not json", timeout=30,
                            headers={"content-type": "application/json"}), 400)
    assert_error(httpx.post(url + "/v1/chat/completions", content=b"", timeout=30), 400)
    assert_error(post(url, {**good, "max_tokens": 0}), 400, param="max_tokens")
    assert_error(post(url, {**good, "max_tokens": 65}), 400, param="max_tokens")
    assert_error(post(url, {**good, "max_tokens": "3"}), 400)
    assert_error(post(url, {**good, "temperature": 5}), 400)
    assert_error(post(url, {**good, "n": 2}), 400, param="n")
    assert_error(post(url, {**good, "seed": -1}), 400)
    assert_error(post(url, {**good, "stop": ["x"] * 9}), 400)
    assert_error(post(url, {**good, "logprobs": True}), 400, param="logprobs")
    assert_error(post(url, {**good, "model": "gpt-4o"}), 404, "model_not_found")
    assert_error(post(url, {**good, "messages": [{"role": "robot", "content": "hi"}]}), 400)
    assert_error(post(url, {**good, "messages": [{"role": "assistant", "content": "hi"}]}), 400, "invalid_messages")
    assert_error(post(url, {**good, "messages": [{"role": "user", "content": "look: <image>"}]}), 400)
    three = user_message([to_data_url(photos["coffee"])] * 3, "Compare.")
    assert_error(post(url, {**good, "messages": three}), 400, "too_many_images")
    big = {**good, "messages": [{"role": "user", "content": "x" * (3 * 1024 * 1024)}]}
    assert_error(post(url, big), 413, "request_too_large")
    chunked = httpx.post(url + "/v1/chat/completions", content=iter([b"{" + b" " * (1024 * 1024)] * 3), timeout=30)
    assert_error(chunked, 413, "request_too_large")
    assert_error(httpx.get(url + "/v1/nothing-here"), 404)
    assert_error(httpx.get(url + "/v1/chat/completions"), 405)


def test_the_openai_client_raises_typed_errors(client, good, model_name):
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=model_name, messages=good["messages"], extra_body={"visual_tokens": 99})
    assert "visual_tokens" in str(bad.value)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=good["messages"])


def test_still_healthy_and_correct_after_the_bad_requests(live_server, client, good, photos, reference, model_name):
    health = httpx.get(live_server.url + "/health")
    assert health.status_code == 200 and health.json()["worker"]["alive"]
    response = client.chat.completions.create(model=model_name, messages=good["messages"], max_tokens=3,
                                              extra_body={"visual_tokens": 4})
    assert response.choices[0].message.content == reference([photos["coffee"]], "What is this?", 4, 3).text


# ---- time limit and queue limit, on a second app with tight limits ----------------------------
def test_time_limit_and_full_queue_give_503_and_free_the_worker(extra_server, good):
    strict = extra_server(request_timeout_s=1.5, max_queue=1, max_batch_size=1, batch_wait_ms=0.0,
                          max_tokens_limit=4000, auto=AutoBudgetConfig((2, 16), 0.9))
    url = strict.url
    worker = strict.app.state.mqt.worker
    slow = {**good, "max_tokens": 1990}  # under the tiny LM's 2048 positions (context_length_exceeded beyond)
    results: dict[str, httpx.Response] = {}

    def send(name: str, body: dict) -> None:
        results[name] = post(url, body)

    first = threading.Thread(target=send, args=("slow", slow))
    first.start()
    deadline = time.monotonic() + 10
    while worker.counters["rows"] == 0 and worker.queued() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the slow request is generating; the queue (size 1) is empty
    others = [threading.Thread(target=send, args=(f"other{i}", slow)) for i in range(3)]
    for t in others:
        t.start()
    for t in [first, *others]:
        t.join(timeout=30)
    started = time.monotonic()
    assert_error(results["slow"], 503, "timeout")
    statuses = sorted(results[f"other{i}"].json()["error"]["code"] for i in range(3))
    assert "overloaded" in statuses and set(statuses) <= {"overloaded", "timeout"}
    ok = post(url, good)  # the worker is free again, right away
    assert ok.status_code == 200 and time.monotonic() - started < 10
    assert httpx.get(url + "/health").json()["worker"]["alive"]
    stream = {**slow, "stream": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json=stream, timeout=30) as response:
        events = [line for line in response.iter_lines() if line]
    assert '"code": "timeout"' in events[-2] and events[-1] == "data: [DONE]"
