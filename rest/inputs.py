"""The one check of a request's text outside its body: path parameters, query names and values,
and the headers the API reads. PostgreSQL text cannot hold NUL, and a header's bytes that are not
UTF-8 arrive as lone surrogates (aiohttp decodes with surrogateescape) that no encoder takes; such a
value is refused here, before any handler can pass it to SQL or hash it. Bodies are checked by
rest/api.py's `convert`."""

from __future__ import annotations

import re

from aiohttp import web

from hub.app import Handler
from rest.errors import ApiError

# NUL, and the lone surrogates of undecodable bytes (percent-decoding leaves invalid UTF-8 encoded
# and the query decoder replaces it with U+FFFD, so they come from headers, but a path or query
# holding one is refused as well).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

READ_HEADERS = (
    "Authorization",
    "Cookie",
    "Idempotency-Key",
    "X-Forwarded-For",
    "X-Razorpay-Event-Id",
    "X-Razorpay-Signature",
)
"""The request headers /api handlers and middlewares read. Others (User-Agent, proxies' own) may
carry any bytes: they are never looked at."""

_PROBLEM = "must not contain NUL characters or bytes that are not UTF-8"


def unstorable(text: str) -> bool:
    """True when `text` holds NUL or a lone surrogate: PostgreSQL and UTF-8 encoders refuse it."""
    return _UNSTORABLE.search(text) is not None


def refusal(request: web.Request) -> ApiError | None:
    """The error answering a request whose path parameters, query or read headers hold NUL or
    undecodable bytes (404 for an `id` in the path, as a malformed id; 400 naming the part
    otherwise), or None when they are all storable."""
    for name, value in request.match_info.items():
        if unstorable(value):
            if name == "id":
                return ApiError("not_found", "No such id.")
            return ApiError("bad_request", f"Path parameter {name} {_PROBLEM}.", details={"parameter": name})
    for name, value in request.query.items():
        if unstorable(name) or unstorable(value):
            shown = name if not unstorable(name) else repr(name)
            return ApiError(
                "bad_request", f"Query parameter {shown} {_PROBLEM}.", details={"parameter": shown}
            )
    for header in READ_HEADERS:
        for value in request.headers.getall(header, ()):
            if unstorable(value):
                return ApiError("bad_request", f"The {header} header {_PROBLEM}.", details={"header": header})
    return None


@web.middleware
async def input_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse an /api request whose path, query or read headers hold unstorable text (see
    `refusal`) before its handler runs."""
    if request.path.startswith("/api") and (error := refusal(request)) is not None:
        raise error
    return await handler(request)
