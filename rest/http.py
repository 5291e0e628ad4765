"""Shared request plumbing for /api handlers: success bodies, JSON input, field validation,
the caller's identity, CORS."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from aiohttp import web

from hub.app import Handler
from hub.keys import SETTINGS, TOKENS
from hub.tokens import Claims, TokenError
from rest.errors import ApiError

_MISSING: Any = object()

CLAIMS: web.RequestKey[Claims] = web.RequestKey("claims", Claims)
"""The verified claims of the request's access token, once something has verified it."""


def ok(data: Any, status: int = 200, **meta: Any) -> web.Response:
    """The success shape `{"success": true, "data": ..., **meta}` (lists add page/limit/total or a cursor)."""
    body: dict[str, Any] = {"success": True, "data": data}
    body.update(meta)
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or ApiError bad_request saying what is wrong with it."""
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError("bad_request", "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError("bad_request", "The body must be a JSON object.")
    return body


def bearer_claims(request: web.Request) -> Claims | None:
    """The verified claims of the request's Bearer token; None when there is no Authorization header;
    ApiError unauthorized when the token is bad or expired."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError("unauthorized", "Send the access token as 'Authorization: Bearer <token>'.")
    try:
        return request.app[TOKENS].verify(token.strip())
    except TokenError as exc:
        raise ApiError(
            "unauthorized", f"The access token is not valid ({exc}); refresh it and try again."
        ) from None


def require_user(request: web.Request) -> Claims:
    """The caller's claims; ApiError unauthorized when there is no valid access token."""
    claims = request.get(CLAIMS) or bearer_claims(request)
    if claims is None:
        raise ApiError("unauthorized", "This route needs an access token: 'Authorization: Bearer <token>'.")
    request[CLAIMS] = claims
    return claims


def path_uuid(request: web.Request, name: str = "id") -> str:
    """A UUID path parameter, or not_found (a malformed id names nothing)."""
    raw = request.match_info.get(name, "")
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise ApiError("not_found", f"No such {name}: {raw!r}.") from None


class Fields:
    """Reads typed fields from a JSON object, collecting every problem; `check()` raises one
    ApiError bad_request whose details name each bad field."""

    def __init__(self, source: Mapping[str, Any]) -> None:
        self.source = source
        self.errors: dict[str, str] = {}

    def _get(self, name: str, required: bool) -> Any:
        value = self.source.get(name, _MISSING)
        if value is _MISSING or value is None:
            if required:
                self.errors[name] = "is required"
            return _MISSING
        return value

    def text(
        self,
        name: str,
        *,
        required: bool = True,
        min_len: int = 1,
        max_len: int = 1000,
        pattern: re.Pattern[str] | None = None,
        choices: Iterable[str] | None = None,
    ) -> Any:
        """A string field (None when absent and optional)."""
        value = self._get(name, required)
        if value is _MISSING:
            return None
        if not isinstance(value, str):
            self.errors[name] = "must be a string"
            return None
        value = value.strip()
        if "\x00" in value:
            # PostgreSQL text cannot hold NUL; refuse it here rather than fail in the database.
            self.errors[name] = "must not contain NUL characters"
        elif not min_len <= len(value) <= max_len:
            self.errors[name] = f"must be {min_len} to {max_len} characters"
        elif pattern is not None and not pattern.fullmatch(value):
            self.errors[name] = "has the wrong format"
        elif choices is not None and value not in (allowed := list(choices)):
            self.errors[name] = f"must be one of {', '.join(allowed)}"
        return value

    def integer(self, name: str, *, required: bool = True, low: int = 0, high: int = 2**53) -> Any:
        """An integer field (booleans and floats refused; None when absent and optional)."""
        value = self._get(name, required)
        if value is _MISSING:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.errors[name] = "must be an integer"
            return None
        if not low <= value <= high:
            self.errors[name] = f"must be from {low} to {high}"
        return value

    def boolean(self, name: str, *, required: bool = True) -> Any:
        """A boolean field (None when absent and optional)."""
        value = self._get(name, required)
        if value is _MISSING:
            return None
        if not isinstance(value, bool):
            self.errors[name] = "must be true or false"
            return None
        return value

    def text_list(
        self,
        name: str,
        *,
        required: bool = True,
        min_items: int = 0,
        max_items: int = 50,
        max_len: int = 100,
        choices: Iterable[str] | None = None,
    ) -> Any:
        """A list of non-empty strings, de-duplicated in order (None when absent and optional)."""
        value = self._get(name, required)
        if value is _MISSING:
            return None
        if not isinstance(value, list) or not all(
            isinstance(v, str) and v.strip() and "\x00" not in v for v in value
        ):
            self.errors[name] = "must be a list of non-empty strings without NUL characters"
            return None
        items = list(dict.fromkeys(v.strip() for v in value))
        allowed = list(choices) if choices is not None else None
        if not min_items <= len(items) <= max_items:
            self.errors[name] = f"must have {min_items} to {max_items} items"
        elif any(len(v) > max_len for v in items):
            self.errors[name] = f"items must be at most {max_len} characters"
        elif allowed is not None and any(v not in allowed for v in items):
            self.errors[name] = f"items must be among {', '.join(allowed)}"
        return items

    def unknown(self, allowed: Iterable[str]) -> None:
        """Record every key of the source not in `allowed`."""
        known = set(allowed)
        for key in self.source:
            if key not in known:
                self.errors[key] = "is not a known field"

    def check(self) -> None:
        """Raise bad_request naming every bad field, if any."""
        if self.errors:
            names = ", ".join(sorted(self.errors))
            raise ApiError("bad_request", f"Fix these fields: {names}.", details={"fields": self.errors})


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high], or bad_request."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError("bad_request", f"Query parameter {name} must be an integer.") from None
    if not low <= value <= high:
        raise ApiError("bad_request", f"Query parameter {name} must be from {low} to {high}.")
    return value


_CORS_HEADERS = "Content-Type, Authorization, Idempotency-Key, X-Request-Id"
_CORS_METHODS = "GET, POST, PUT, PATCH, DELETE"
_CORS_EXPOSE = "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After, X-Request-Id"


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS for /api: only CLIENT_URL's origin, with credentials; preflights answered here."""
    if not request.path.startswith("/api"):
        return await handler(request)
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin == request.app[SETTINGS].client_url
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        response: web.StreamResponse = web.Response(status=204 if allowed else 403)
        if allowed:
            response.headers["Access-Control-Allow-Methods"] = _CORS_METHODS
            response.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
    else:
        response = await handler(request)
    if allowed and origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Expose-Headers"] = _CORS_EXPOSE
    response.headers["Vary"] = "Origin"
    return response
