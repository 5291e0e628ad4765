"""Shared request plumbing for /api handlers: the caller's identity, path and query parameters,
CORS. Bodies in and out are rest/api.py's.

A token is only as good as its user: `user_middleware` refuses (401) every request carrying a valid
access token whose user no longer exists, and (403 forbidden, `details.reason: banned`) one whose
user is banned, before any handler runs (so nothing is written and no
gateway is called for them), and `require_user` hands out only claims that passed it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import TypeVar

from aiohttp import web

from hub.app import Handler
from hub.keys import POOL, SETTINGS, TOKENS
from hub.tokens import Claims, TokenError
from rest.errors import CALLER, ApiError

T = TypeVar("T")

CLAIMS: web.RequestKey[Claims] = web.RequestKey("claims", Claims)
"""The verified claims of the request's access token, once something has verified it."""


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
    """The caller's claims; ApiError unauthorized when there is no valid access token. The user row
    of a valid token was checked by `user_middleware` (a vanished user is refused there)."""
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


_DIGITS = re.compile(r"[0-9]{1,19}")


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high], or bad_request. Plain decimal digits only (no
    sign, spaces, underscores or 5,000-digit numbers: int() takes all of those)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not _DIGITS.fullmatch(raw):
        raise ApiError(
            "bad_request", f"Query parameter {name} must be an integer from {low} to {high}.",
            details={"parameter": name},
        )  # fmt: skip
    value = int(raw)
    if not low <= value <= high:
        raise ApiError("bad_request", f"Query parameter {name} must be from {low} to {high}.")
    return value


def query_choice(request: web.Request, name: str, choices: Iterable[str], default: T) -> str | T:
    """A query parameter that must be one of `choices` (an absent or empty one is `default`), or
    bad_request naming them in their order."""
    value = request.query.get(name) or None
    if value is None:
        return default
    options = list(choices)
    if value not in options:
        raise ApiError("bad_request", f"Query parameter {name} must be one of {', '.join(options)}.")
    return value


GONE = "The user of this access token no longer exists; log in again."
BANNED = "This account is banned; contact support."
_UNCHECKED = ("/api/auth/",)
"""Routes that take no access token (login, refresh, logout): a stale Authorization header sent
along does not refuse them."""


def _claims_of(request: web.Request) -> Claims | None:
    """The valid access token's claims (as the rate limiter found them, else verified here); None
    without one, or with a bad one (the handler refuses that in its own words)."""
    claims: Claims | None = request.get(CLAIMS)
    if claims is not None:
        return claims
    try:
        return bearer_claims(request)
    except ApiError:
        return None


@web.middleware
async def user_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 for a request whose valid access token names a user who no longer exists (deleted, or its
    account deleted by DELETE /api/users/me, while the token lives), 403 (`details.reason: banned`)
    for a banned user's: one primary-key lookup per authenticated /api request."""
    if request.path.startswith("/api") and not request.path.startswith(_UNCHECKED):
        claims = _claims_of(request)
        if claims is not None:
            try:
                user_id = uuid.UUID(claims.user_id)
            except ValueError:
                user_id = None
            # None: no such user; True: banned (0019_admin.sql).
            banned = None
            if user_id is not None:
                banned = await request.app[POOL].fetchval(
                    "SELECT banned_at IS NOT NULL FROM users WHERE id = $1 AND deleted_at IS NULL", user_id
                )
            if banned is None:
                raise ApiError("unauthorized", GONE, details={"reason": "user_gone"})
            if banned:
                raise ApiError("forbidden", BANNED, details={"reason": "banned"})
            request[CLAIMS] = claims
            request[CALLER] = claims.user_id
    return await handler(request)


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
