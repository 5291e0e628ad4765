"""API keys of the server API (/api/server/*): other backends call it with a key instead of a user's
access token (sql/migrations/0021_api_keys.sql).

A key is `gw_` + 43 url-safe base64 characters (32 random bytes), shown once when created (`python
-m hub api-key create`). Only its SHA-256 is stored, with its first 12 characters (`prefix`) to
identify it. A request gives it as `Authorization: Bearer gw_...` or `X-Api-Key: gw_...`;
`require_key` answers 401 for a missing, unknown or revoked key, 403 for a key without the route's
scope, and 429 over API_RATE_PER_KEY requests a minute for that key (shared across processes
through the Store)."""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Final, Literal

import asyncpg
from aiohttp import web

from hub.keys import POOL, SETTINGS, STORE
from rest.errors import ApiError

log = logging.getLogger("gigwire.api_keys")

Scope = Literal["publish", "disconnect", "presence", "stats"]
SCOPES: Final[tuple[Scope, ...]] = ("publish", "disconnect", "presence", "stats")
KEY_PREFIX: Final = "gw_"
PREFIX_LEN: Final = 12
HEADER: Final = "X-Api-Key"
WINDOW_S: Final = 60

SECURITY: Final[list[dict[str, list[str]]]] = [{"apiKeyBearer": []}, {"apiKeyHeader": []}]
"""The OpenAPI security requirement of a server API route: either way of giving the key."""
SECURITY_SCHEMES: Final[dict[str, dict[str, str]]] = {
    "apiKeyBearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "gw_ API key",
        "description": "A server API key (`python -m hub api-key create`) as `Authorization: Bearer gw_...`.",
    },
    "apiKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": HEADER,
        "description": "A server API key (`python -m hub api-key create`) in the X-Api-Key header.",
    },
}


@dataclass(frozen=True)
class ApiKey:
    """A key that passed `require_key`."""

    id: str
    name: str
    prefix: str
    scopes: tuple[str, ...]


def new_key() -> str:
    """A fresh key: `gw_` and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    """What is stored of a key: its SHA-256, hex (a 256-bit random key needs no slow hash)."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(text: str) -> list[str]:
    """`publish,presence` as a list of known scopes; ValueError naming an unknown one or none."""
    scopes = list(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"scopes must be a comma-separated list among {', '.join(SCOPES)}")
    return scopes


def _presented(request: web.Request) -> str | None:
    """The key the request presents (X-Api-Key first, else a Bearer gw_ token), or None."""
    header = request.headers.get(HEADER)
    if header is not None:
        return header.strip()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip().startswith(KEY_PREFIX):
        return token.strip()
    return None


_LOOKUP = "SELECT id::text, name, prefix, scopes, revoked_at FROM api_keys WHERE key_hash = $1"
# last_used_at is written at most once a minute per key: not a write per request.
_TOUCH = (
    "UPDATE api_keys SET last_used_at = now() WHERE id = $1"
    " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')"
)


async def require_key(request: web.Request, scope: Scope) -> ApiKey:
    """The request's API key, which holds `scope`; ApiError 401 (no key, unknown or revoked), 403
    (the scope is missing) or 429 (over the key's rate limit) otherwise."""
    presented = _presented(request)
    if presented is None:
        raise ApiError(
            "unauthorized",
            f"This route needs a server API key: 'Authorization: Bearer gw_...' or '{HEADER}'.",
        )
    pool = request.app[POOL]
    row = None
    if presented.startswith(KEY_PREFIX) and len(presented) <= 200:
        row = await pool.fetchrow(_LOOKUP, key_hash(presented))
    if row is None or row["revoked_at"] is not None:
        raise ApiError(
            "unauthorized", "This API key is unknown or revoked; create one with 'api-key create'."
        )
    key = ApiKey(row["id"], row["name"], row["prefix"], tuple(row["scopes"]))
    if scope not in key.scopes:
        raise ApiError(
            "forbidden",
            f"This API key lacks the '{scope}' scope (it has {', '.join(key.scopes)}).",
            details={"scope": scope},
        )
    await _limit(request, key)
    await pool.execute(_TOUCH, uuid.UUID(key.id))
    return key


async def _limit(request: web.Request, key: ApiKey) -> None:
    limit = request.app[SETTINGS].api_rate_per_key
    try:
        count, reset_s = await request.app[STORE].hit(f"rl:key:{key.id}", WINDOW_S)
    except Exception as exc:  # the Store (Redis) is down: let the call through, as the IP limiter does
        log.warning("rate limiter store unreachable; letting the request through", extra={"error": repr(exc)})
        return
    if count > limit:
        reset = max(math.ceil(reset_s), 1)
        raise ApiError(
            "rate_limited",
            f"Too many requests with this API key: at most {limit} a minute. Retry after {reset} s.",
            details={"scope": "key", "limit": limit, "retryAfter": reset},
            headers={"Retry-After": str(reset)},
        )


# -- the CLI's operations (python -m hub api-key ...) ----------------------------------------------


async def create(conn: asyncpg.Connection, name: str, scopes: list[str]) -> tuple[str, str]:
    """Store a new key; returns (id, the key itself: shown once, never stored)."""
    key = new_key()
    key_id: str = await conn.fetchval(
        "INSERT INTO api_keys (name, prefix, key_hash, scopes) VALUES ($1, $2, $3, $4) RETURNING id::text",
        name,
        key[:PREFIX_LEN],
        key_hash(key),
        scopes,
    )
    return key_id, key


async def listing(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Every key, newest first: id, name, prefix, scopes, created, last used, revoked."""
    rows = await conn.fetch(
        "SELECT id::text, name, prefix, scopes, created_at, last_used_at, revoked_at FROM api_keys"
        " ORDER BY created_at DESC"
    )
    return [dict(r) for r in rows]


async def revoke(conn: asyncpg.Connection, which: str) -> int:
    """Revoke the key with this id or prefix (not yet revoked); returns how many were."""
    try:
        key_id: uuid.UUID | None = uuid.UUID(which)
    except ValueError:
        key_id = None
    status: str = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE revoked_at IS NULL AND (id = $1 OR prefix = $2)",
        key_id,
        which,
    )
    return int(status.rsplit(" ", 1)[-1])
