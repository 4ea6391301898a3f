"""The batching queue: one thread owns the model and answers queued requests in batches.

Requests with different budgets share a batch (MQT's budget is just a count of image tokens per
row, and `generate_batch` takes one per row), so the queue never splits by budget; it splits only by
sampling settings. The worker waits `batch_wait_s` after the first request for others to join,
then runs up to `max_batch_size` rows at once.

Failure containment, so that one bad request never takes the server down, hangs it, or fails
the requests it was batched with:
- each request is prepared (its image tokens expanded to its budget, size-checked) alone; one that
  fails to prepare, for whatever reason, fails alone (an `MQTError`: a 400);
- if a batch still fails, its rows are retried one by one, so only the row that fails again gets
  the error (rows that already streamed text are not retried: their client has seen part of an answer);
- every row carries its deadline and cancel flag into generation (`RowTracker`), so a slow or
  abandoned request stops at its deadline instead of holding the worker;
- anything that escapes all that fails that batch's requests and the loop goes on.
The server tokenizes prompts before queueing them (`translate.py`), so the worker's own thread
spends no time on a client's text; requests submitted without `template_ids` are tokenized here.
"auto" requests carry their `AutoBudget` (the escalation `generate_auto` runs too) and are re-queued
at the front with the larger budget it names until it accepts an answer; the image's visual tokens
come from the encode-once cache on every attempt.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, replace
from typing import Any

from mqt_vlm.errors import MQTError
from mqt_vlm.inference.auto_budget import AutoBudget, BudgetPolicy
from mqt_vlm.inference.batch import PreparedRequest, generate_prepared, prepare_request
from mqt_vlm.inference.cache import VisualTokenCache
from mqt_vlm.inference.params import GenerationRequest, GenerationResult
from mqt_vlm.inference.streaming import RowRouter, TextStreamer

log = logging.getLogger("mqt_vlm.serve")


class QueueFull(Exception):
    """The queue holds `max_queue` requests already (HTTP 503)."""


class WorkerStopped(Exception):
    """The worker is not running (HTTP 503)."""


class RequestTimeout(Exception):
    """The request's deadline passed before it could run (HTTP 503)."""


@dataclass
class Job:
    request: GenerationRequest
    future: Future
    auto: AutoBudget | None = None  # the escalation of an "auto" request
    streamer: TextStreamer | None = None
    template_ids: list[int] | None = None  # prompt ids with one image token per image, tokenized off this thread


class _TrackingRouter(RowRouter):
    """A `RowRouter` that remembers which rows have streamed text to a client (those cannot be retried)."""

    def __init__(self, streamers: list[TextStreamer | None]) -> None:
        super().__init__(streamers)
        self.streamed: set[int] = set()

    def on_text(self, row: int, delta: str) -> None:
        if self.streamers[row] is not None:
            self.streamed.add(row)
        super().on_text(row, delta)


def split_by_padding(lengths: list[int], max_padding: float) -> list[list[int]]:
    """Indices grouped so that no group's prefill is more than `max_padding` padding.

    Left padding makes every row of a batch as long as its longest prompt; with mixed budgets (16
    next to 256 visual tokens) most of a small-budget row is padding. Where the prefill is
    compute-bound (CPUs) that padding costs real time, so rows are sorted by length and cut into
    groups; 1.0 keeps everything in one batch (best where decode dominates, e.g. GPUs).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups:
            candidate = groups[-1] + [i]
            longest = lengths[i]  # sorted: the newcomer is the longest
            padding = 1 - sum(lengths[j] for j in candidate) / (longest * len(candidate))
            if padding <= max_padding:
                groups[-1] = candidate
                continue
        groups.append([i])
    return groups


def _settle(future: Future, result: Any = None, error: BaseException | None = None) -> None:
    """Resolve a future unless the caller already cancelled it."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


class BatchWorker:
    def __init__(
        self,
        model: Any,
        processor: Any,
        cache: VisualTokenCache | None,
        policy: BudgetPolicy,
        max_batch_size: int = 16,
        batch_wait_s: float = 0.005,
        max_queue: int = 256,
        max_prompt_tokens: int = 4096,
        max_padding: float = 1.0,
    ) -> None:
        self.model, self.processor, self.cache, self.policy = model, processor, cache, policy
        self.max_batch_size, self.batch_wait_s, self.max_queue = max_batch_size, batch_wait_s, max_queue
        self.max_prompt_tokens = max_prompt_tokens
        self.max_padding = max_padding
        self._queue: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.counters = {"batches": 0, "rows": 0, "largest_batch": 0, "completed": 0, "failed": 0, "escalations": 0,
                         "mixed_budget_batches": 0}

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="mqt-batch-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            pending = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for job in pending:
            _settle(job.future, error=WorkerStopped("The server is shutting down."))
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    # ---- submission --------------------------------------------------------------------------
    def submit(self, request: GenerationRequest, auto: bool | AutoBudget = False, streamer: TextStreamer | None = None,
               template_ids: list[int] | None = None) -> Future:
        """Queue a request; the future resolves to a `GenerationResult` or an exception.

        `auto`: True (or the request's `AutoBudget`, as `translate` made it) to let the policy choose
        the budget; the request then starts at the escalation's first budget. `template_ids`: the
        prompt tokenized with one image token per image (see `expand_image_tokens`); without it the
        worker tokenizes the prompt itself.
        """
        escalation = None
        if auto and request.images:
            escalation = auto if isinstance(auto, AutoBudget) else AutoBudget(self.policy, self.processor.num_queries)
            request = replace(request, num_visual_tokens=escalation.budget)
        job = Job(request, Future(), escalation, None if escalation else streamer, template_ids=template_ids)
        with self._cond:
            if not self.alive:
                raise WorkerStopped("The generation worker is not running.")
            if len(self._queue) >= self.max_queue:
                raise QueueFull(f"The server is busy ({self.max_queue} requests queued); retry shortly.")
            self._queue.append(job)
            self._cond.notify()
        return job.future

    # ---- the loop ----------------------------------------------------------------------------
    def _take_batch(self) -> list[Job]:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait(0.5)
            if self._stopping:
                return []
            end = time.monotonic() + self.batch_wait_s
            while len(self._queue) < self.max_batch_size and not self._stopping:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            count = min(len(self._queue), self.max_batch_size)
            return [self._queue.popleft() for _ in range(count)]

    def _run(self) -> None:
        while not self._stopping:
            jobs = self._take_batch()
            if not jobs:
                continue
            try:
                self._process(jobs)
            except Exception as exc:  # a bug must not kill the worker: fail the batch, keep serving
                log.exception("generation batch failed")
                for job in jobs:
                    _settle(job.future, error=exc)
                self.counters["failed"] += len(jobs)

    def _prepare(self, job: Job) -> PreparedRequest | None:
        request = job.request
        if job.future.cancelled() or (request.cancel is not None and request.cancel.is_set()):
            return None
        if request.deadline is not None and time.monotonic() >= request.deadline:
            _settle(job.future, error=RequestTimeout("The request timed out while queued."))
            return None
        try:
            prepared = prepare_request(self.processor, request, job.template_ids)
            worst = len(prepared.input_ids)
            if job.auto is not None and prepared.budgets:  # escalation may grow the prompt up to its largest budget
                worst += (job.auto.largest() - prepared.budgets[0]) * len(prepared.budgets)
            if worst > self.max_prompt_tokens:
                raise MQTError(f"The prompt needs {worst} tokens (text + visual), more than the limit of "
                               f"{self.max_prompt_tokens}; shorten it, send fewer images or use a smaller budget.")
            return prepared
        except Exception as exc:  # noqa: BLE001 - whatever it is, it is this request's alone
            if not isinstance(exc, MQTError):
                log.warning("preparing a request failed: %r", exc)
                exc = MQTError(f"The request could not be prepared ({type(exc).__name__}: {exc}).")
            _settle(job.future, error=exc)
            self.counters["failed"] += 1
            return None

    def _process(self, jobs: list[Job]) -> None:
        ready = [(job, p) for job in jobs if (p := self._prepare(job)) is not None]
        groups: dict[tuple[object, ...], list[tuple[Job, PreparedRequest]]] = {}
        for job, prepared in ready:
            groups.setdefault(job.request.params.batch_key(), []).append((job, prepared))
        for group in groups.values():
            for rows in split_by_padding([len(p.input_ids) for _, p in group], self.max_padding):
                self._run_group([group[i] for i in rows])

    def _run_group(self, group: list[tuple[Job, PreparedRequest]]) -> None:
        streamers = [job.streamer for job, _ in group]
        streamer = _TrackingRouter(streamers) if any(s is not None for s in streamers) else None
        try:
            results = generate_prepared(self.model, self.processor, [p for _, p in group], self.cache, streamer)
        except Exception as exc:  # noqa: BLE001 - contain it: retry the rows alone, fail only what fails again
            if not isinstance(exc, MQTError):
                log.exception("generation failed for a batch of %d", len(group))
            streamed = streamer.streamed if streamer is not None else set()
            for row, item in enumerate(group):
                if len(group) == 1 or row in streamed:  # alone already, or its client has seen part of an answer
                    _settle(item[0].future, error=exc)
                    self.counters["failed"] += 1
                else:
                    self._run_group([item])
            return
        self.counters["batches"] += 1
        self.counters["rows"] += len(group)
        self.counters["largest_batch"] = max(self.counters["largest_batch"], len(group))
        self.counters["mixed_budget_batches"] += len({tuple(p.budgets) for _, p in group}) > 1
        for (job, _), result in zip(group, results):
            self._complete(job, result)

    def _complete(self, job: Job, result: GenerationResult) -> None:
        if job.auto is None:
            _settle(job.future, result)
            self.counters["completed"] += 1
            return
        try:
            again = job.auto.record(result)
        except Exception as exc:  # noqa: BLE001 - a policy that fails fails its request alone
            log.error("the budget policy failed: %r", exc)
            _settle(job.future, error=exc)
            self.counters["failed"] += 1
            return
        if not again:
            _settle(job.future, job.auto.result())
            self.counters["completed"] += 1
            return
        job.request = replace(job.request, num_visual_tokens=job.auto.budget)
        self.counters["escalations"] += 1
        with self._cond:  # to the front: it has waited already, and its image is hot in the cache
            self._queue.appendleft(job)
            self._cond.notify()

    def stats(self) -> dict[str, Any]:
        return {"alive": self.alive, "queued": self.queued(), **self.counters}
