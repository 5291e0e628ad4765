"""`Idempotency-Key` for mutating money endpoints: the first request with a key runs and its answer is
stored; a repeat gets the stored answer; the same key with a different request gets 422; a repeat
while the first is still running gets 409. Keys are scoped per user and per route (method + path).

Usage in a handler, after authentication:

    claims = require_user(request)
    return await idempotent(request, claims.user_id, lambda: _withdraw(request, claims))
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from domain.errors import DomainError
from hub.keys import POOL
from rest.errors import ApiError, response_for

HEADER = "Idempotency-Key"
# A request that started this long ago and never stored an answer died with its process: the key
# may be reused. Longer than any money request can take (gateway calls time out well before).
_STALE_SECONDS = 120

PARAMETER: dict[str, Any] = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": "A unique key per intended operation (1-200 printable characters). A repeat returns "
    "the first answer; the same key with a different body is refused (422); a repeat while the first "
    "is still running is refused (409).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}


def _key(request: web.Request, required: bool) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        if required:
            raise ApiError("bad_request", f"Send an {HEADER} header (a unique value per withdrawal attempt).")
        return None
    key = key.strip()
    if not 1 <= len(key) <= 200 or not key.isprintable():
        raise ApiError("bad_request", f"{HEADER} must be 1 to 200 printable characters.")
    return key


def key_of(request: web.Request) -> str | None:
    """The request's Idempotency-Key as `idempotent` uses it (stripped), or None; inside a handler
    run by `idempotent` it is already validated. Handlers with effects beyond their transaction
    store it with what they create, so a retry after a failure mid-way finds that instead of
    making it again (the key's record is released on such a failure)."""
    key = request.headers.get(HEADER)
    return None if key is None else key.strip()


async def idempotent(
    request: web.Request,
    user_id: str,
    handler: Callable[[], Awaitable[web.Response]],
    *,
    required: bool = False,
) -> web.Response:
    """Run `handler` at most once per (user, route, Idempotency-Key) and replay its stored answer.
    Without the header the handler simply runs (unless `required`, then 400). Answers of 5xx and
    unexpected exceptions are not stored, so the client may retry with the same key. Domain and API errors
    raised by the handler are answered and stored like any other 4xx answer."""
    key = _key(request, required)
    if key is None:
        return await handler()
    route = f"{request.method} {request.path}"
    body = await request.read()
    digest = hashlib.sha256(route.encode() + b"\n" + body).hexdigest()
    pool = request.app[POOL]
    claimed = await pool.fetchval(
        "INSERT INTO idempotency_keys (user_id, route, key, request_hash) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (user_id, route, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,"
        " created_at = now() WHERE idempotency_keys.status IS NULL"
        f" AND idempotency_keys.created_at < now() - interval '{_STALE_SECONDS} seconds'"
        " AND idempotency_keys.request_hash = EXCLUDED.request_hash RETURNING true",
        user_id,
        route,
        key,
        digest,
    )
    if not claimed:
        return await _replay(pool, user_id, route, key, digest)
    try:
        try:
            response = await handler()
        except DomainError as exc:
            response = response_for(exc)
    except BaseException:
        await _release(pool, user_id, route, key)
        raise
    if response.status >= 500:
        await _release(pool, user_id, route, key)
        return response
    await pool.execute(
        "UPDATE idempotency_keys SET status = $4, response = $5"
        " WHERE user_id = $1 AND route = $2 AND key = $3",
        user_id,
        route,
        key,
        response.status,
        bytes(response.body) if isinstance(response.body, bytes | bytearray) else b"",
    )
    return response


async def _release(pool: asyncpg.Pool, user_id: str, route: str, key: str) -> None:
    await pool.execute(
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND key = $3 AND status IS NULL",
        user_id,
        route,
        key,
    )


async def _replay(pool: asyncpg.Pool, user_id: str, route: str, key: str, digest: str) -> web.Response:
    row = await pool.fetchrow(
        "SELECT request_hash, status, response FROM idempotency_keys"
        " WHERE user_id = $1 AND route = $2 AND key = $3",
        user_id,
        route,
        key,
    )
    if row is None:  # released between our insert and this read: the first attempt failed
        raise ApiError("conflict", f"A request with this {HEADER} just failed; retry it.")
    if row["request_hash"] != digest:
        raise ApiError(
            "unprocessable",
            f"This {HEADER} was used for a different request; use a new key for a new operation.",
        )
    if row["status"] is None:
        raise ApiError(
            "conflict",
            f"A request with this {HEADER} is still running; retry after it finishes.",
            headers={"Retry-After": "1"},
        )
    return web.Response(
        body=bytes(row["response"]),
        status=int(row["status"]),
        content_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )
