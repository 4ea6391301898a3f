"""Per-row bookkeeping inside one `model.generate` call: stop strings, per-row token limits,
deadlines, cancellation, log-probabilities and streaming.

A batch mixes requests with different `max_tokens`, stop strings and deadlines, while HF's
`generate` has one setting of each for the whole batch. `RowTracker` is a `StoppingCriteria` that
marks each row finished on its own terms; HF then pads finished rows and stops when all are done.
It sees every new token exactly once, so it is also where text is decoded and streamed, and where
each token's log-probability (recorded by `LogprobRecorder`) is kept for the auto-budget policy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria

from mqt_vlm.inference.streaming import TextStreamer


def find_stop(text: str, stops: Sequence[str]) -> int:
    """Index of the earliest stop string in `text`, or -1."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else -1


def held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters must not be streamed yet: a tail that could still grow into a
    stop string, or an incomplete UTF-8 sequence (decoded as U+FFFD until its last byte arrives)."""
    hold = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:k]):
                hold = max(hold, k)
                break
    replacement = len(text) - len(text.rstrip("\ufffd"))
    return max(hold, replacement)


class LogprobRecorder(LogitsProcessor):
    """Keeps the log-softmax of the current step's logits; placed before any sampling warper so the
    recorded probabilities are the model's own, not the temperature-scaled ones."""

    def __init__(self) -> None:
        self.last: torch.Tensor | None = None  # [B, V]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.last = torch.log_softmax(scores.float(), dim=-1)
        return scores


@dataclass
class RowSpec:
    """What ends one row: its own token limit, stop strings, deadline and cancel flag."""

    max_new_tokens: int
    stop: tuple[str, ...] = ()
    deadline: float | None = None
    cancel: threading.Event | None = None
    stream: bool = False


@dataclass
class RowState:
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str | None = None
    emitted: str = ""
    first_token_time: float | None = None
    finish_time: float | None = None


class RowTracker(StoppingCriteria):
    """One `StoppingCriteria` for the whole batch that decides, per row, when the row is done."""

    def __init__(
        self,
        tokenizer: Any,
        rows: Sequence[RowSpec],
        eos_token_ids: Sequence[int],
        recorder: LogprobRecorder | None = None,
        streamer: TextStreamer | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.rows = list(rows)
        self.eos_token_ids = set(int(i) for i in eos_token_ids)
        self.recorder = recorder
        self.streamer = streamer
        self.state = [RowState() for _ in rows]

    def decode(self, tokens: Sequence[int]) -> str:
        # clean_up_tokenization_spaces=False keeps every prefix of the text a prefix of the final text
        return self.tokenizer.decode(list(tokens), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def visible_text(self, row: int) -> str:
        """The row's answer so far, cut before the first stop string."""
        text = self.decode(self.state[row].tokens)
        cut = find_stop(text, self.rows[row].stop)
        return text if cut < 0 else text[:cut]

    def __call__(self, input_ids: torch.LongTensor, scores: Any = None, **kwargs: Any) -> torch.BoolTensor:
        now = time.monotonic()
        last = input_ids[:, -1]
        new_tokens = last.tolist()
        logprobs = None
        if self.recorder is not None and self.recorder.last is not None:  # one gather, one device sync
            logprobs = self.recorder.last.gather(1, last[:, None].to(self.recorder.last.device))[:, 0].tolist()
        done = []
        for row, (spec, state) in enumerate(zip(self.rows, self.state)):
            if state.finish_reason is None:
                token = int(new_tokens[row])
                state.tokens.append(token)
                if state.first_token_time is None:
                    state.first_token_time = now
                if logprobs is not None:
                    state.logprobs.append(float(logprobs[row]))
                self._advance(row, spec, state, token, now)
                if state.finish_reason is not None:
                    state.finish_time = now
            done.append(state.finish_reason is not None)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def _advance(self, row: int, spec: RowSpec, state: RowState, token: int, now: float) -> None:
        if token in self.eos_token_ids:
            state.finish_reason = "stop"
            return
        if spec.stop or (spec.stream and self.streamer is not None):
            text = self.decode(state.tokens)
            cut = find_stop(text, spec.stop)
            if cut >= 0:
                state.finish_reason = "stop"
                return
            if spec.stream and self.streamer is not None:
                safe = text[: len(text) - held_back(text, spec.stop)]
                if len(safe) > len(state.emitted) and safe.startswith(state.emitted):
                    self.streamer.on_text(row, safe[len(state.emitted):])
                    state.emitted = safe
        if len(state.tokens) >= spec.max_new_tokens:
            state.finish_reason = "length"
        elif spec.cancel is not None and spec.cancel.is_set():
            state.finish_reason = "cancelled"
        elif spec.deadline is not None and now >= spec.deadline:
            state.finish_reason = "timeout"

    def finish_row(self, row: int) -> tuple[str, str]:
        """(final text, finish reason) after generate returned; flushes what streaming held back."""
        state = self.state[row]
        reason = state.finish_reason or "length"
        text = self.visible_text(row)
        if self.rows[row].stream and self.streamer is not None and len(text) > len(state.emitted):
            if text.startswith(state.emitted):
                self.streamer.on_text(row, text[len(state.emitted):])
                state.emitted = text
        return text, reason
