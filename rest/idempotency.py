"""`Idempotency-Key` for mutating money endpoints: the first request with a key runs and its answer is
stored; a repeat gets the stored answer; the same key with a different request gets 422; a repeat
while the first is still running gets 409. Keys are scoped per user and per route (method + path).

Usage in a handler, after authentication:

    claims = require_user(request)
    return await idempotent(request, claims.user_id, lambda: _withdraw(request, claims))

Each key's record has an id (`Claim.record`) never used again: whatever a handler derives from the
key (a ledger reference, a row's link to the key) names the record, so that a key reused after its
record was swept (IDEMPOTENCY_KEY_RETENTION_S) runs as a new request, and a retry after a failure
(the record released, not deleted) finds what the failed attempt made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Claim:
    """The Idempotency-Key record a request runs under: the key (stripped) and the record's id.
    The id stays when a failed attempt releases the record for its retry, and is new when the key
    comes again after its record was swept: name what the request makes by `tag`, never by the key
    alone."""

    key: str
    record: int

    @property
    def tag(self) -> str:
        """`<record>:<key>`: unique for all time, and still readable as the client's key."""
        return f"{self.record}:{self.key}"


CLAIM: web.RequestKey[Claim] = web.RequestKey("idempotency_claim", Claim)


def claim_of(request: web.Request) -> Claim:
    """The claim of the request `idempotent` is running (LookupError outside it, or without a key).
    Handlers with effects beyond their transaction store `record` with what they create, so a
    retry after a failure mid-way finds that instead of making it again."""
    return request[CLAIM]


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
    # A new record, or one whose attempt failed (released) or died (no answer after _STALE_SECONDS)
    # reclaimed by the same request: either way its id is ours.
    record = await pool.fetchval(
        "INSERT INTO idempotency_keys (user_id, route, key, request_hash) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (user_id, route, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,"
        " created_at = now(), released = false WHERE idempotency_keys.status IS NULL"
        " AND (idempotency_keys.released"
        f" OR idempotency_keys.created_at < now() - interval '{_STALE_SECONDS} seconds')"
        " AND idempotency_keys.request_hash = EXCLUDED.request_hash RETURNING id",
        user_id,
        route,
        key,
        digest,
    )
    if record is None:
        return await _replay(pool, user_id, route, key, digest)
    request[CLAIM] = Claim(key, int(record))
    try:
        try:
            response = await handler()
        except DomainError as exc:
            response = response_for(exc)
    except BaseException:
        await _release(pool, record)
        raise
    if response.status >= 500:
        await _release(pool, record)
        return response
    await pool.execute(
        "UPDATE idempotency_keys SET status = $2, response = $3 WHERE id = $1",
        record,
        response.status,
        bytes(response.body) if isinstance(response.body, bytes | bytearray) else b"",
    )
    return response


async def _release(pool: asyncpg.Pool, record: int) -> None:
    """Let the same request retry with its key at once: the record stays (and keeps its id, which
    names what the failed attempt may have made) but the next matching claim takes it."""
    await pool.execute("UPDATE idempotency_keys SET released = true WHERE id = $1 AND status IS NULL", record)


async def _replay(pool: asyncpg.Pool, user_id: str, route: str, key: str, digest: str) -> web.Response:
    row = await pool.fetchrow(
        "SELECT request_hash, status, response FROM idempotency_keys"
        " WHERE user_id = $1 AND route = $2 AND key = $3",
        user_id,
        route,
        key,
    )
    if row is None:  # swept between our insert and this read
        raise ApiError("conflict", f"A request with this {HEADER} just expired; retry it.")
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
