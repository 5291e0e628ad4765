"""Shared request plumbing for /api handlers: the caller's identity, path and query parameters,
CORS. Bodies in and out are rest/api.py's."""

from __future__ import annotations

import uuid

from aiohttp import web

from hub.app import Handler
from hub.keys import SETTINGS, TOKENS
from hub.tokens import Claims, TokenError
from rest.errors import ApiError

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
