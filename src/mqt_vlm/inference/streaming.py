"""Streamers: where incremental text goes while a batch is generating.

HF's own streamers assume batch size 1 and cannot tell when one row of a batch has finished, so a
batch of mixed requests streams through this smaller interface instead: `on_text(row, delta)` with
text that is final (stop strings and incomplete UTF-8 are held back until they resolve), then
`on_finish(row, result)` exactly once per row. Callbacks run on the generating thread; keep them
cheap and thread-safe (the server hands deltas to the event loop with `call_soon_threadsafe`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mqt_vlm.inference.params import GenerationResult


class TextStreamer(Protocol):
    """Receives the text of each row of a batch as it is generated."""

    def on_text(self, row: int, delta: str) -> None: ...

    def on_finish(self, row: int, result: GenerationResult) -> None: ...


class CallbackStreamer:
    """Adapts two plain callables to `TextStreamer`; either may be None."""

    def __init__(
        self,
        on_text: Callable[[int, str], None] | None = None,
        on_finish: Callable[[int, GenerationResult], None] | None = None,
    ) -> None:
        self._on_text = on_text
        self._on_finish = on_finish

    def on_text(self, row: int, delta: str) -> None:
        if self._on_text is not None:
            self._on_text(row, delta)

    def on_finish(self, row: int, result: GenerationResult) -> None:
        if self._on_finish is not None:
            self._on_finish(row, result)


class PrintStreamer:
    """Writes row 0 to a terminal as it arrives (the CLI's `--stream`)."""

    def __init__(self, stream: IO[str] | None = None, end: str = "\n") -> None:
        self.stream = stream or sys.stdout
        self.end = end

    def on_text(self, row: int, delta: str) -> None:
        if row == 0:
            self.stream.write(delta)
            self.stream.flush()

    def on_finish(self, row: int, result: GenerationResult) -> None:
        if row == 0:
            self.stream.write(self.end)
            self.stream.flush()


class RowRouter:
    """Fans rows of one batch out to per-row streamers (or None for rows that do not stream).

    The server batches requests from different clients; each client's stream only sees its row.
    """

    def __init__(self, streamers: list[TextStreamer | None]) -> None:
        self.streamers = streamers

    def on_text(self, row: int, delta: str) -> None:
        target = self.streamers[row]
        if target is not None:
            target.on_text(0, delta)

    def on_finish(self, row: int, result: GenerationResult) -> None:
        target = self.streamers[row]
        if target is not None:
            target.on_finish(0, result)
