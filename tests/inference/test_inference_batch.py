"""Batched generation with a budget per sample: equal to running each sample alone, left padding,
sampling, per-row stop strings and limits, streaming, deadlines."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from mqt_vlm.errors import MQTError
from mqt_vlm.inference import CallbackStreamer, GenerationRequest, SamplingParams, VisualTokenCache, generate_batch
from mqt_vlm.inference.batch import prepare_request
from mqt_vlm.inference.stopping import find_stop, held_back


def req(processor, image, m, question="What is this?", **params):
    images = [image] if image is not None else []
    return GenerationRequest(processor.format_prompt(question, with_image=image is not None), images, m,
                             SamplingParams(**{"max_new_tokens": 8, **params}))


def reference_greedy(model, processor, image, m, question, n):
    """Plain single-sample `model.generate` from pixel values, independent of generate_batch."""
    images = [image] if image is not None else None
    batch = processor(images=images, text=processor.format_prompt(question, with_image=image is not None),
                      num_visual_tokens=m if image is not None else None)
    with torch.no_grad():
        out = model.generate(**batch, num_visual_tokens=m, max_new_tokens=n, do_sample=False, eos_token_id=[],
                             min_new_tokens=n)
    return out[0, batch["input_ids"].shape[1]:].tolist()


def test_mixed_budget_batch_equals_each_sample_alone(tiny_model, photos, random_image):
    model, processor = tiny_model
    cases = [(photos["astronaut"], 1, "What is this?"), (photos["coffee"], 16, "Describe the picture in detail."),
             (random_image, 7, "Color?"), (None, 0, "Say something."), (photos["astronaut"], 4, "Again?")]
    requests = [req(processor, image, m, q, max_new_tokens=10) for image, m, q in cases]
    batch = processor.pad([prepare_request(processor, r).input_ids for r in requests], padding_side="left")
    assert (batch["attention_mask"][:, -1] == 1).all() and (batch["attention_mask"][:, 0] == 0).any()  # left padded
    results = generate_batch(model, processor, requests)
    for (image, m, q), result in zip(cases, results):
        alone = generate_batch(model, processor, [req(processor, image, m, q, max_new_tokens=10)])[0]
        assert result.token_ids == alone.token_ids and result.text == alone.text
        expected = reference_greedy(model, processor, image, m, q, len(result.token_ids))
        assert result.token_ids == expected
        assert result.num_visual_tokens == m and result.visual_tokens == (m if image is not None else 0)
    assert len({tuple(r.token_ids) for r in results}) > 1  # the rows really differ


def test_budget_changes_the_prompt_length_by_exactly_m(tiny_model, photos):
    model, processor = tiny_model
    results = generate_batch(model, processor, [req(processor, photos["coffee"], m) for m in (2, 9, 16)])
    lengths = [r.prompt_tokens for r in results]
    assert lengths[1] - lengths[0] == 7 and lengths[2] - lengths[0] == 14
    assert all(len(r.logprobs) == r.completion_tokens and all(lp <= 0 for lp in r.logprobs) for r in results)


def test_sampling_is_seeded_and_differs_from_greedy(tiny_model, photos):
    model, processor = tiny_model
    sample = dict(temperature=1.0, top_p=0.95, top_k=100, seed=123, max_new_tokens=10)
    first = generate_batch(model, processor, [req(processor, photos["coffee"], 4, **sample)])[0]
    again = generate_batch(model, processor, [req(processor, photos["coffee"], 4, **sample)])[0]
    other = generate_batch(model, processor, [req(processor, photos["coffee"], 4, **{**sample, "seed": 7})])[0]
    greedy = generate_batch(model, processor, [req(processor, photos["coffee"], 4, max_new_tokens=10)])[0]
    assert first.token_ids == again.token_ids
    assert first.token_ids != other.token_ids and first.token_ids != greedy.token_ids
    # a greedy and a sampled request in one call are grouped, each answered as if alone
    mixed = generate_batch(model, processor, [req(processor, photos["coffee"], 4, max_new_tokens=10),
                                              req(processor, photos["coffee"], 4, **sample)])
    assert mixed[0].token_ids == greedy.token_ids and mixed[1].token_ids == first.token_ids


def test_per_row_stop_strings_and_token_limits(tiny_model, photos):
    model, processor = tiny_model
    free = generate_batch(model, processor, [req(processor, photos["chelsea"], 5, max_new_tokens=12)])[0]
    assert free.finish_reason == "length" and len(free.text) > 6
    stop = free.text[4:7]
    assert stop.strip(), "pick a stop string with visible characters"
    results = generate_batch(model, processor, [
        req(processor, photos["chelsea"], 5, max_new_tokens=12, stop=(stop,)),
        req(processor, photos["chelsea"], 5, max_new_tokens=3),
        req(processor, photos["chelsea"], 5, max_new_tokens=12),
    ])
    stopped, short, full = results
    assert stopped.finish_reason == "stop" and stopped.text == free.text[: free.text.find(stop)]
    assert stop not in stopped.text and stopped.completion_tokens < 12
    assert short.finish_reason == "length" and short.token_ids == free.token_ids[:3]
    assert full.token_ids == free.token_ids


def test_streaming_concatenates_to_the_answer_and_never_shows_a_stop_string(tiny_model, photos):
    model, processor = tiny_model
    free = generate_batch(model, processor, [req(processor, photos["astronaut"], 3, max_new_tokens=12)])[0]
    stop = free.text[5:9]
    deltas: dict[int, list[str]] = {0: [], 1: []}
    finished: dict[int, str] = {}
    streamer = CallbackStreamer(lambda row, d: deltas[row].append(d), lambda row, r: finished.__setitem__(row, r.text))
    results = generate_batch(model, processor, [req(processor, photos["astronaut"], 3, max_new_tokens=12, stop=(stop,)),
                                                req(processor, photos["coffee"], 16, max_new_tokens=12)], streamer=streamer)
    for row, result in enumerate(results):
        assert "".join(deltas[row]) == result.text == finished[row]
        assert len(deltas[row]) > 1  # really incremental
    assert all(stop not in "".join(deltas[0][:k]) for k in range(len(deltas[0]) + 1))


def test_stop_string_helpers():
    assert find_stop("hello USER: hi", ["USER:", "lo"]) == 3
    assert find_stop("hello", ["x"]) == -1
    assert held_back("answer US", ["USER:"]) == 2
    assert held_back("answer", ["USER:"]) == 0
    assert held_back("caf\ufffd", []) == 1


def test_deadline_and_cancel_stop_only_their_row(tiny_model, photos):
    model, processor = tiny_model
    cancel = threading.Event()
    cancel.set()
    late = req(processor, photos["coffee"], 4, max_new_tokens=50)
    late.deadline = time.monotonic() - 1
    gone = req(processor, photos["coffee"], 4, max_new_tokens=50)
    gone.cancel = cancel
    normal = req(processor, photos["coffee"], 4, max_new_tokens=6)
    results = generate_batch(model, processor, [late, gone, normal])
    assert results[0].finish_reason == "timeout" and results[0].completion_tokens == 1
    assert results[1].finish_reason == "cancelled" and results[1].completion_tokens == 1
    assert results[2].finish_reason == "length" and results[2].completion_tokens == 6


def test_cache_is_used_and_answers_do_not_change(tiny_model, photos):
    model, processor = tiny_model
    cache = VisualTokenCache()
    cold = generate_batch(model, processor, [req(processor, photos["coffee"], 8)], cache)[0]
    warm = generate_batch(model, processor, [req(processor, photos["coffee"], 3), req(processor, photos["coffee"], 8)], cache)
    assert cold.images_from_cache == 0 and [r.images_from_cache for r in warm] == [1, 1]
    assert warm[1].token_ids == cold.token_ids


def test_bad_requests_fail_with_clear_errors(tiny_model, photos):
    model, processor = tiny_model
    with pytest.raises(MQTError, match="num_visual_tokens"):
        generate_batch(model, processor, [req(processor, photos["coffee"], 17)])
    with pytest.raises(MQTError, match="num_visual_tokens"):
        generate_batch(model, processor, [req(processor, photos["coffee"], 0)])
    with pytest.raises(MQTError, match="placeholders"):
        generate_batch(model, processor, [GenerationRequest("no placeholder here", [photos["coffee"]], 4)])
    with pytest.raises(MQTError, match="PIL"):
        GenerationRequest(processor.format_prompt("q"), [b"bytes"], 4)  # type: ignore[list-item]
    with pytest.raises(MQTError, match="explicit int"):
        GenerationRequest(processor.format_prompt("q"), [photos["coffee"]], "16")  # type: ignore[arg-type]
    for bad in (dict(max_new_tokens=0), dict(temperature=-1), dict(temperature=float("nan")), dict(top_p=0),
                dict(stop=("",)), dict(stop=("x",) * 9), dict(seed=-1), dict(seed=2**64), dict(top_k=-1)):
        with pytest.raises(MQTError):
            SamplingParams(**bad)
    assert not SamplingParams(temperature=1e-6).do_sample and SamplingParams(temperature=0.01).do_sample
