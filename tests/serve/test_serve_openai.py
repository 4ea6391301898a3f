"""The official `openai` client against the live server: plain, streaming, budgets, auto, models."""

from __future__ import annotations

import httpx
import pytest


def test_models_and_health(client, live_server, model_name):
    models = client.models.list()
    assert [m.id for m in models.data] == [model_name]
    assert models.data[0].max_visual_tokens == 16
    assert client.models.retrieve(model_name).id == model_name
    health = httpx.get(live_server.url + "/health").json()
    assert health["status"] == "ok" and health["worker"]["alive"] and health["max_visual_tokens"] == 16


def test_plain_request_matches_in_process_generation(client, model_name, photos, to_data_url, user_message, reference):
    response = client.chat.completions.create(
        model=model_name, messages=user_message(to_data_url(photos["coffee"]), "What is this?"),
        max_tokens=6, extra_body={"visual_tokens": 8})
    expected = reference([photos["coffee"]], "What is this?", 8)
    choice = response.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == expected.text
    assert choice.finish_reason == "length"
    assert response.model == model_name and response.id.startswith("chatcmpl-")
    assert response.usage.completion_tokens == 6 and response.usage.visual_tokens == 8
    assert response.usage.prompt_tokens == expected.prompt_tokens
    assert response.usage.total_tokens == expected.prompt_tokens + 6
    assert response.visual_tokens == 8 and response.visual_tokens_tried == [8]


def test_budget_per_request(client, model_name, photos, to_data_url, user_message, reference):
    url = to_data_url(photos["astronaut"])
    usage = {}
    for m in (1, 4, 16):
        response = client.chat.completions.create(model=model_name, messages=user_message(url, "Describe it."),
                                                  max_tokens=5, extra_body={"visual_tokens": m})
        assert response.choices[0].message.content == reference([photos["astronaut"]], "Describe it.", m, 5).text
        usage[m] = response.usage
        assert response.usage.visual_tokens == m == response.visual_tokens
    assert usage[16].prompt_tokens - usage[1].prompt_tokens == 15  # only the visual tokens differ
    assert usage[4].images_from_cache == 1 and usage[16].images_from_cache == 1  # encoded once
    default = client.chat.completions.create(model=model_name, messages=user_message(url, "Describe it."), max_tokens=5)
    assert default.visual_tokens == 16  # the model's default budget, stated in the response
    for word in ("M", "max"):  # the budget vocabulary's word for all M tokens
        response = client.chat.completions.create(model=model_name, messages=user_message(url, "Describe it."),
                                                  max_tokens=5, extra_body={"visual_tokens": word})
        assert response.visual_tokens == 16 and response.choices[0].message.content == default.choices[0].message.content


def test_streaming_equals_the_non_streamed_answer(client, model_name, photos, to_data_url, user_message):
    messages = user_message(to_data_url(photos["chelsea"]), "What animal is this?")
    plain = client.chat.completions.create(model=model_name, messages=messages, max_tokens=10,
                                           extra_body={"visual_tokens": 4})
    stream = client.chat.completions.create(model=model_name, messages=messages, max_tokens=10, stream=True,
                                            stream_options={"include_usage": True}, extra_body={"visual_tokens": 4})
    chunks = list(stream)
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(content) == plain.choices[0].message.content
    assert len(content) > 2  # really streamed, token by token
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10
    assert chunks[-1].usage.visual_tokens == 4 and finals[0].visual_tokens == 4


def test_stream_is_server_sent_events_ending_with_done(live_server, model_name, photos, to_data_url, user_message):
    body = {"model": model_name, "messages": user_message(to_data_url(photos["coffee"]), "Hi?"), "max_tokens": 3,
            "stream": True, "visual_tokens": 2}
    with httpx.stream("POST", live_server.url + "/v1/chat/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"


def test_auto_budget_escalates_and_reports_the_budget(client, model_name, photos, to_data_url, user_message, reference):
    messages = user_message(to_data_url(photos["coffee"]), "What is on the table?")
    response = client.chat.completions.create(model=model_name, messages=messages, max_tokens=5,
                                              extra_body={"visual_tokens": "auto"})
    assert response.visual_tokens_tried == [2, 8, 16] and response.visual_tokens == 16
    assert response.usage.visual_tokens == 16
    assert response.choices[0].message.content == reference([photos["coffee"]], "What is on the table?", 16, 5).text
    stream = client.chat.completions.create(model=model_name, messages=messages, max_tokens=5, stream=True,
                                            extra_body={"visual_tokens": "auto"})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == response.choices[0].message.content
    assert [c.visual_tokens for c in chunks if c.choices and c.choices[0].finish_reason] == [16]


def test_stop_strings_system_message_and_text_only(client, model_name, photos, to_data_url, user_message, reference):
    url = to_data_url(photos["coffee"])
    free = reference([photos["coffee"]], "Say more.", 4, 12)
    stop = free.text[4:8]
    response = client.chat.completions.create(model=model_name, messages=user_message(url, "Say more."), max_tokens=12,
                                              stop=[stop], extra_body={"visual_tokens": 4})
    assert response.choices[0].finish_reason == "stop"
    assert response.choices[0].message.content == free.text[: free.text.find(stop)]
    system = client.chat.completions.create(
        model=model_name, max_tokens=4, extra_body={"visual_tokens": 4},
        messages=[{"role": "system", "content": "You are terse."}, *user_message(url, "Say more.")])
    assert system.usage.prompt_tokens != response.usage.prompt_tokens  # the system text replaced vicuna's
    text_only = client.chat.completions.create(model=model_name, max_tokens=4,
                                               messages=[{"role": "user", "content": "Hello there"}])
    assert text_only.usage.visual_tokens == 0 and text_only.choices[0].message.content


@pytest.mark.parametrize("turns", [1, 2])
def test_multi_turn_conversation(client, model_name, photos, to_data_url, user_message, turns):
    messages = user_message(to_data_url(photos["coffee"]), "What is this?")
    for _ in range(turns - 1):
        messages += [{"role": "assistant", "content": "A cup."}, {"role": "user", "content": "What colour?"}]
    response = client.chat.completions.create(model=model_name, messages=messages, max_tokens=3,
                                              extra_body={"visual_tokens": 2})
    assert response.usage.completion_tokens == 3 and response.usage.visual_tokens == 2
