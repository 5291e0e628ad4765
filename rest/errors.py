"""The one REST error type and the one place that turns errors into the JSON error shape:
`{"success": false, "error": {"code", "message", "details"?}}`. Domain code raises
domain.errors.DomainError, which REST answers in the same shape with the status of its code."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal, cast, get_args

import asyncpg
import msgspec
from aiohttp import web

from domain.errors import DomainError
from hub.app import Handler
from hub.db import DatabaseUnavailable
from hub.logs import outage

log = logging.getLogger("gigwire.rest")

CALLER: web.RequestKey[str] = web.RequestKey("caller", str)
"""The user id of the request's access token, once rest.http.user_middleware found its user row."""

# code -> HTTP status, the REST error table (seeds/000 status codes).
STATUS = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "too_large": 413,
    "unprocessable": 422,
    "rate_limited": 429,
    "internal": 500,
    "bad_gateway": 502,
    "unavailable": 503,
}

ErrorCode = Literal[
    "bad_request", "unauthorized", "forbidden", "not_found", "method_not_allowed", "conflict",
    "too_large", "unprocessable", "rate_limited", "internal", "bad_gateway", "unavailable",
]  # fmt: skip
assert set(get_args(ErrorCode)) == set(STATUS), "ErrorCode must list STATUS's codes"


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    """What went wrong: a code of the REST error table, a message saying what to do, details
    (e.g. `fields`: each bad field and why) when there are any."""

    code: ErrorCode
    message: str
    details: dict[str, Any] | None = None


class Error(msgspec.Struct):
    """The one REST error shape: `{"success": false, "error": {code, message, details?}}`."""

    success: Literal[False]
    error: ErrorDetail


_ENCODE = msgspec.json.Encoder().encode


class ApiError(DomainError):
    """An error answered to the caller. `code` is a key of STATUS; `message` says what to do;
    `headers` and `status` (default: STATUS[code]) are HTTP's own additions to a DomainError."""

    def __init__(
        self,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(code, message, details)
        self.headers = dict(headers) if headers else {}
        self.status = status or STATUS[code]

    def response(self) -> web.Response:
        """The JSON error response for this error."""
        return error_response(self.status, self.code, self.message, self.details, self.headers)


def response_for(exc: DomainError) -> web.Response:
    """The JSON error response of a domain or REST error (a DomainError gets its code's status)."""
    if isinstance(exc, ApiError):
        return exc.response()
    return error_response(STATUS[exc.code], exc.code, exc.message, exc.details)


def error_response(
    status: int,
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """Build the error shape; used by ApiError and by the middleware for aiohttp's own errors."""
    detail = ErrorDetail(cast(ErrorCode, code), message, dict(details) if details else None)
    return web.Response(
        body=_ENCODE(Error(False, detail)),
        status=status,
        content_type="application/json",
        headers=headers,
    )


DATABASE_RETRY_AFTER_S = 1
"""Retry-After of a 503 for want of a database connection (the pool waited its acquire timeout)."""

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "unprocessable",
    429: "rate_limited",
}


def vanished_row(request: web.Request, exc: asyncpg.ForeignKeyViolationError) -> web.Response:
    """The answer to a write that referred to a row deleted meanwhile (a foreign-key violation): 401
    when the row is the caller's own user (its token outlived it), else 409. Never a 500: the
    statement failed, so its transaction wrote nothing."""
    detail = str(getattr(exc, "detail", "") or "")
    if 'table "users"' in detail:
        caller = request.get(CALLER)
        if caller is not None and caller in detail:
            return error_response(
                401,
                "unauthorized",
                "The user of this access token no longer exists; log in again.",
                {"reason": "user_gone"},
            )
        return error_response(409, "conflict", "A user this request refers to no longer exists.")
    return error_response(
        409, "conflict", "Something this request refers to was deleted meanwhile; reload it."
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every /api failure in the error shape; log unexpected ones with their traceback."""
    if not request.path.startswith("/api"):
        return await handler(request)
    try:
        return await handler(request)
    except DomainError as exc:
        return response_for(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "internal" if exc.status >= 500 else "bad_request")
        message = {
            404: f"No route {request.method} {request.path}; see /api/docs for the routes.",
            405: f"{request.method} is not allowed on {request.path}.",
            413: "The request body is too large.",
        }.get(exc.status, exc.reason)
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return error_response(exc.status, code, message, headers=headers)
    except DatabaseUnavailable as exc:
        # Out of database connections (the pool waited its acquire timeout): the server's state,
        # not a fault of its code; say when to retry, and log no traceback.
        outage(log, "database unavailable", path=request.path, error=exc.reason)
        return error_response(
            503,
            "unavailable",
            "The database has no connection free right now; retry shortly"
            " (with the same Idempotency-Key where the route takes one).",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )
    except asyncpg.ForeignKeyViolationError as exc:
        return vanished_row(request, exc)
    except asyncpg.TransactionRollbackError as exc:
        # A deadlock or serialization failure: PostgreSQL rolled the transaction back whole, so
        # nothing changed and the same request can simply run again.
        outage(log, "transaction rolled back by the database", path=request.path, error=type(exc).__name__)
        return error_response(
            503,
            "unavailable",
            "The database rolled this request back to resolve a conflict with another; nothing was"
            " changed: retry it (with the same Idempotency-Key where the route takes one).",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )
    except Exception:
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return error_response(500, "internal", "The server failed; nothing was changed. Try again.")
