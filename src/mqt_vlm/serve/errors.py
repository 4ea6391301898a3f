"""Errors in the OpenAI shape: `{"error": {"message", "type", "param", "code"}}`.

OpenAI clients parse this body to raise typed exceptions with a readable message, so every failure
the server can produce (validation, limits, overload, time-outs, bugs) leaves through here, never
as FastAPI's default 422 body or a bare 500 page.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mqt_vlm.errors import MQTError

log = logging.getLogger("mqt_vlm.serve")


class APIError(Exception):
    """An error response: HTTP status plus the OpenAI error fields."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or ("invalid_request_error" if status < 500 else "server_error")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def error_response(status: int, message: str, code: str | None = None, param: str | None = None) -> JSONResponse:
    return APIError(status, message, code=code, param=param).response()


def _validation_message(exc: RequestValidationError, num_queries: int | None) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "Invalid request body.", None
    first = errors[0]
    loc = [str(x) for x in first.get("loc", ()) if x != "body"]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return "The request body is not valid JSON.", None
    if loc and loc[0] == "visual_tokens":  # a union error; say what is allowed instead
        bound = f"1..{num_queries}" if num_queries else "1..M"
        return (f'visual_tokens must be an int in {bound}, "M" (or "max") or "auto", got {first.get("input")!r}.',
                "visual_tokens")
    where = f" at {param}" if param else ""
    extra = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"Invalid request{where}: {first.get('msg', 'invalid value')}{extra}.", param


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception type to an OpenAI-shaped JSON error."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(MQTError)
    async def _mqt_error(request: Request, exc: MQTError) -> JSONResponse:
        return error_response(400, str(exc), code="invalid_value")

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        state = getattr(request.app.state, "mqt", None)
        num_queries = getattr(getattr(state, "processor", None), "num_queries", None)
        message, param = _validation_message(exc, num_queries)
        return error_response(400, message, code="invalid_request", param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return error_response(exc.status_code, str(exc.detail), code=code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(500, f"Internal error ({type(exc).__name__}); the server is still running.",
                              code="internal_error")
