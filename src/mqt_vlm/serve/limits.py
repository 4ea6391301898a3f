"""Limits on what a connection may send, enforced before any parsing.

JSON parsing and base64 decoding both allocate in proportion to the body, so the body is capped
at the ASGI layer: a declared `Content-Length` over the limit is refused at once, and a body sent
without one (chunked) is counted as it arrives and refused as soon as it passes the limit. Bodies
within the limit are buffered and replayed to the app unchanged.

Time is bounded too, because a connection that sends a byte a second holds its socket and buffers
forever otherwise: the request line and headers must arrive within `header_timeout_s` (uvicorn has
no such timeout; `h11_with_header_timeout` adds it), then the whole body within `body_timeout_s`
(`BodySizeLimit`); both answer 408 and close the connection.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mqt_vlm.serve.config import ServeConfig

Scope = dict[str, Any]
Message = dict[str, Any]


MAX_HEAD_BYTES = 16 * 1024  # request line + headers (h11's incomplete-event limit; uvicorn answers 400 beyond)
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this


def _error_body(message: str, code: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                 "code": code}}).encode()


def _too_large_body(limit: int) -> bytes:
    return _error_body(f"The request body is larger than the limit of {limit:,} bytes (--max-body-mb); "
                       "send smaller or fewer images.", "request_too_large")


def _timeout_body(seconds: float, what: str, flag: str) -> bytes:
    return _error_body(f"The {what} did not arrive within {seconds:g} s ({flag}); the connection is closed.",
                       "request_timeout")


class BodySizeLimit:
    """ASGI middleware: 413 in the OpenAI error shape for bodies over `max_bytes`, 408 for bodies that
    take longer than `timeout_s` to arrive."""

    def __init__(self, app: Any, max_bytes: int, timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def _reply(self, send: Any, status: int, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def _reject(self, send: Any) -> None:
        await self._reply(send, 413, _too_large_body(self.max_bytes))

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._reject(send)
                    return
        chunks: list[bytes] = []
        size, more = 0, True
        try:
            async with asyncio.timeout(self.timeout_s):
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    body = message.get("body", b"")
                    size += len(body)
                    if size > self.max_bytes:
                        await self._reject(send)
                        return
                    chunks.append(body)
                    more = message.get("more_body", False)
        except TimeoutError:
            await self._reply(send, 408, _timeout_body(self.timeout_s, "request body", "--body-timeout"))
            return
        buffered = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": buffered, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def h11_with_header_timeout(timeout_s: float) -> type:
    """uvicorn's h11 protocol, closing a connection whose request head does not arrive in time.

    The clock starts when the server begins to wait for a request (the connection opens, or the
    previous response is sent) and stops when the request line and headers are complete; a head
    still incomplete at `timeout_s` gets a 408 and the connection is closed (silently if nothing
    arrived). The body has its own deadline in `BodySizeLimit`.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class H11WithHeaderTimeout(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def _waiting_for_request(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(timeout_s, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self._waiting_for_request():  # a head arrived: the app's cycle (and body deadline) runs
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self._waiting_for_request():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or not self._waiting_for_request():
                return
            partial, _ = self.conn.trailing_data
            if partial and self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE:
                body = _timeout_body(timeout_s, "request line and headers", "--header-timeout")
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                     b"content-length: %d\r\nconnection: close\r\n\r\n%b" % (len(body), body))
            self.transport.close()

    return H11WithHeaderTimeout


def uvicorn_options(config: ServeConfig) -> dict[str, Any]:
    """The connection limits of `config` as `uvicorn.run` / `uvicorn.Config` keyword arguments."""
    return {"http": h11_with_header_timeout(config.header_timeout_s), "ws": "none",
            "timeout_keep_alive": KEEP_ALIVE_S, "h11_max_incomplete_event_size": MAX_HEAD_BYTES}
