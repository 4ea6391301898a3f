"""The request-body limit, enforced before any parsing.

JSON parsing and base64 decoding both allocate in proportion to the body, so the body is capped
at the ASGI layer: a declared `Content-Length` over the limit is refused at once, and a body sent
without one (chunked) is counted as it arrives and refused as soon as it passes the limit. Bodies
within the limit are buffered and replayed to the app unchanged.
"""

from __future__ import annotations

import json
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]


def _too_large_body(limit: int) -> bytes:
    return json.dumps({"error": {
        "message": f"The request body is larger than the limit of {limit:,} bytes; send smaller or fewer images.",
        "type": "invalid_request_error", "param": None, "code": "request_too_large",
    }}).encode()


class BodySizeLimit:
    """ASGI middleware: 413 in the OpenAI error shape for bodies over `max_bytes`."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Any) -> None:
        body = _too_large_body(self.max_bytes)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

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
        chunks, size, more = [], 0, True
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
        buffered = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": buffered, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
