"""One error shape for every failure: `{"error": {"code", "message", "hint"}}`.

    ApiError (400 bad_request)
    ├── Unauthorized (401)      no token, or a token the hub does not know
    ├── Forbidden (403)         a known token without the right role or namespace
    ├── NotFound (404)          the thing named in the path or body does not exist
    ├── Conflict (409)          the name is taken / the state changed underneath
    ├── PayloadTooLarge (413)   a body or file over the challenge's size limits
    ├── Invalid (422)           well-formed JSON that breaks a rule
    └── RateLimited (429)       over a per-handle rate limit; carries Retry-After

FastAPI's own validation errors (422), unknown routes (404), wrong methods (405) and
unexpected exceptions (500, logged with the traceback) are rendered in the same envelope, so a
client never sees a traceback or a bare HTML page.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("swarmlab.api")


class ApiError(Exception):
    """Base of every error the API answers with; subclasses fix status and default code."""

    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        message: str,
        hint: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code:
            self.code = code
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        """The JSON error response for this error."""
        return error_response(self.status, self.code, self.message, self.hint, self.headers)


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "too_large"


class Invalid(ApiError):
    status, code = 422, "invalid"


class RateLimited(ApiError):
    """Over a rate limit; `retry_after_s` goes into the Retry-After header."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str, hint: str, *, retry_after_s: float) -> None:
        seconds = max(1, math.ceil(retry_after_s))
        super().__init__(message, hint, headers={"Retry-After": str(seconds)})
        self.retry_after_s = seconds


def error_response(
    status: int, code: str, message: str, hint: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """Build the envelope; the one place its shape is written down."""
    body = {"error": {"code": code, "message": message, "hint": hint}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part not in ("body", "query", "path")) or "body"


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [f"{_field(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
    return error_response(
        422,
        "invalid",
        "the request does not match the API: " + "; ".join(problems),
        "fix the named fields; GET /v1 lists every route and its parameters",
    )


HTTP_HINTS = {
    404: ("not_found", "check the path; GET /v1 lists every route"),
    405: ("method_not_allowed", "check the HTTP method; GET /v1 lists every route"),
}


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, hint = HTTP_HINTS.get(exc.status_code, ("http_error", "see GET /v1 for the API"))
    return error_response(exc.status_code, code, str(exc.detail), hint, exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        500,
        "internal",
        "the hub failed while handling this request; nothing you sent was wrong",
        "retry in a moment; if it persists, tell the organizers (the hub logged the details)",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every failure through the envelope."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
