"""Dozens of parallel clients with mixed budgets, images and streaming: every answer equals the
single-request answer, and the queue really batched requests of different budgets together."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx


def test_parallel_clients_with_mixed_budgets_get_single_request_answers(
        live_server, client, model_name, photos, to_data_url, user_message, reference):
    images = {name: photos[name] for name in ("astronaut", "coffee", "chelsea")}
    urls = {name: to_data_url(image) for name, image in images.items()}
    combos = [(name, m, question) for name in images for m, question in
              ((1, "What is this?"), (3, "Describe it."), (8, "What is this?"), (16, "Describe it."))]
    expected = {combo: reference([images[combo[0]]], combo[2], combo[1], 6).text for combo in combos}
    jobs = [(combos[i % len(combos)], i % 6 == 5) for i in range(36)]  # every sixth client streams
    before = dict(live_server.app.state.mqt.worker.counters)

    def ask(job):
        (name, m, question), stream = job
        kwargs = dict(model=model_name, messages=user_message(urls[name], question), max_tokens=6,
                      extra_body={"visual_tokens": m})
        if stream:
            chunks = list(client.chat.completions.create(stream=True, **kwargs))
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), m
        response = client.chat.completions.create(**kwargs)
        return response.choices[0].message.content, response.usage.visual_tokens

    with ThreadPoolExecutor(max_workers=36) as pool:
        answers = list(pool.map(ask, jobs))
    for ((combo, _), (text, visual)) in zip(jobs, answers):
        assert text == expected[combo], combo
        assert visual == combo[1]
    counters = live_server.app.state.mqt.worker.counters
    assert counters["rows"] - before["rows"] == 36
    assert counters["batches"] - before["batches"] < 36  # requests shared batches
    assert counters["mixed_budget_batches"] > before["mixed_budget_batches"]  # ... across budgets
    health = httpx.get(live_server.url + "/health").json()
    assert health["status"] == "ok" and health["worker"]["queued"] == 0
