"""The batching queue without HTTP: batches across budgets, isolates bad requests, escalates auto
requests, splits by padding, refuses work when full or stopped."""

from __future__ import annotations

import pytest

from mqt_vlm.errors import MQTError
from mqt_vlm.inference import (
    AutoBudgetConfig,
    ConfidenceEscalation,
    GenerationRequest,
    SamplingParams,
    VisualTokenCache,
    generate_batch,
)
from mqt_vlm.serve.worker import BatchWorker, QueueFull, WorkerStopped, split_by_padding


def test_split_by_padding():
    assert split_by_padding([10, 300, 12, 290], 1.0) == [[0, 2, 3, 1]]
    assert split_by_padding([10, 300, 12, 290], 0.1) == [[0, 2], [3, 1]]
    assert split_by_padding([10, 300, 12, 290], 0.0) == [[0], [2], [3], [1]]
    assert split_by_padding([5, 5, 5], 0.0) == [[0, 1, 2]]
    assert split_by_padding([], 0.5) == []


@pytest.fixture()
def worker_factory(tiny_serving_model):
    model, processor = tiny_serving_model
    workers = []

    def make(**kwargs) -> BatchWorker:
        options = dict(max_batch_size=8, batch_wait_s=0.2, max_queue=16)
        options.update(kwargs)
        worker = BatchWorker(model, processor, VisualTokenCache(), ConfidenceEscalation(AutoBudgetConfig((2, 16), 1.0)),
                             **options)
        worker.start()
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop()


def test_one_batch_across_budgets_with_a_bad_request_isolated(worker_factory, tiny_serving_model, photos):
    model, processor = tiny_serving_model
    worker = worker_factory(max_prompt_tokens=60)
    prompt = processor.format_prompt("What is this?")
    params = SamplingParams(max_new_tokens=4)
    good = [GenerationRequest(prompt, [photos[name]], m, params) for name, m in (("coffee", 2), ("chelsea", 9))]
    too_long = GenerationRequest(processor.format_prompt("word " * 80), [photos["coffee"]], 16, params)
    auto = GenerationRequest(prompt, [photos["astronaut"]], 2, params)
    futures = [worker.submit(good[0]), worker.submit(too_long), worker.submit(good[1]), worker.submit(auto, auto=True)]
    results = [f.result(timeout=60) for f in (futures[0], futures[2], futures[3])]
    with pytest.raises(MQTError, match="limit of 60"):
        futures[1].result(timeout=60)
    for request, result in zip(good, results):
        assert result.token_ids == generate_batch(model, processor, [request])[0].token_ids
    assert results[2].budgets_tried == (2, 16) and results[2].num_visual_tokens == 16
    assert worker.counters["largest_batch"] == 3 and worker.counters["mixed_budget_batches"] >= 1
    assert worker.counters["escalations"] == 1


def test_full_queue_and_stopped_worker_refuse(worker_factory, tiny_serving_model, photos):
    _, processor = tiny_serving_model
    worker = worker_factory(max_queue=2, batch_wait_s=5.0, max_batch_size=8)  # holds requests 5 s before running
    request = GenerationRequest(processor.format_prompt("q"), [photos["coffee"]], 2, SamplingParams(max_new_tokens=2))
    pending = [worker.submit(request), worker.submit(request)]
    with pytest.raises(QueueFull):
        worker.submit(request)
    worker.stop()
    for future in pending:
        with pytest.raises(WorkerStopped):
            future.result(timeout=10)
    with pytest.raises(WorkerStopped):
        worker.submit(request)
    assert not worker.alive


def test_auto_in_the_worker_is_generate_auto(worker_factory, tiny_serving_model, photos):
    """The worker drives the same escalation as generate_auto: same budgets tried, same answer; a
    policy that does not escalate fails its own request (as in generate_auto) and the worker goes on."""
    from mqt_vlm.inference import generate_auto
    from mqt_vlm.inference.auto_budget import BudgetPolicyError

    class Stuck:
        def first_budget(self, num_queries: int) -> int:
            return 8

        def next_budget(self, attempts, num_queries: int) -> int:
            return 8

    model, processor = tiny_serving_model
    worker = worker_factory()
    request = GenerationRequest(processor.format_prompt("What is this?"), [photos["chelsea"]], "auto",
                                SamplingParams(max_new_tokens=4))
    served = worker.submit(request, auto=True).result(timeout=60)
    direct = generate_auto(model, processor, request, worker.policy)
    assert served.budgets_tried == direct.budgets_tried == (2, 16) and served.token_ids == direct.token_ids
    worker.policy = Stuck()
    with pytest.raises(BudgetPolicyError, match="must escalate"):
        worker.submit(request, auto=True).result(timeout=60)
    with pytest.raises(BudgetPolicyError, match="must escalate"):
        generate_auto(model, processor, request, Stuck())
    plain = GenerationRequest(request.prompt, request.images, 4, request.params)
    assert worker.submit(plain).result(timeout=60).num_visual_tokens == 4 and worker.alive
