"""Housekeeping finds its rows through an index (migration 0008), not by reading a whole table: on
tables of 50,000 live rows and a few doomed ones, each sweep query's plan uses the index."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from tests.factories import TestUser
from workers.housekeeping import _DOOMED, OTP_KEEP_S, REFRESH_KEEP_S

LIVE = 50_000
DOOMED = 100
RETENTION_S = 86400.0

# A steady state: the live rows a sweep must pass over, then a few it deletes; $1 is the number of
# rows, $2 what the statement needs besides. Phones are +1 numbers (random_phone's are Indian ones).
_FILL: dict[str, list[tuple[str, Callable[[TestUser], object]]]] = {
    "otp_codes": [
        # Sent within the hour: live, or expired but kept for the send throttle window.
        (
            "INSERT INTO otp_codes (phone, code_hash, created_at, expires_at)"
            " SELECT '+1' || lpad(i::text, 10, '0'), '\\x00', c, c + interval '5 minutes'"
            " FROM generate_series(1, $1) i,"
            " LATERAL (SELECT now() - i * make_interval(secs => $2) AS c) t",
            lambda _user: 0.05,  # one every 50 ms: 50,000 in 42 minutes
        ),
        (
            "INSERT INTO otp_codes (phone, code_hash, created_at, expires_at)"
            " SELECT '+1' || lpad((i + $2::int)::text, 10, '0'), '\\x00', now() - interval '2 hours',"
            " now() - interval '115 minutes' FROM generate_series(1, $1) i",
            lambda _user: LIVE,
        ),
    ],
    "refresh_tokens": [
        (
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)"
            " SELECT sha256(('live' || i)::bytea), gen_random_uuid(), $2, now() + interval '30 days'"
            " FROM generate_series(1, $1) i",
            lambda user: user.id,
        ),
        (
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)"
            " SELECT sha256(('dead' || i)::bytea), gen_random_uuid(), $2, now() - interval '3 days'"
            " FROM generate_series(1, $1) i",
            lambda user: user.id,
        ),
    ],
    "idempotency_keys": [
        (
            "INSERT INTO idempotency_keys (user_id, route, key, request_hash, status, response, created_at)"
            " SELECT gen_random_uuid(), $2, 'live' || i, 'h', 200, '\\x7b7d',"
            " now() - i * interval '1 second' FROM generate_series(1, $1) i",
            lambda _user: "POST /api/wallet/withdraw",
        ),
        (
            "INSERT INTO idempotency_keys (user_id, route, key, request_hash, status, response, created_at)"
            " SELECT gen_random_uuid(), $2, 'old' || i, 'h', 200, '\\x7b7d',"
            " now() - interval '2 days' FROM generate_series(1, $1) i",
            lambda _user: "POST /api/wallet/withdraw",
        ),
    ],
}
_INDEX = {
    "otp_codes": "otp_codes_created_idx",
    "refresh_tokens": "refresh_tokens_expires_idx",
    "idempotency_keys": "idempotency_keys_created_idx",
}
_AGE = {"otp_codes": OTP_KEEP_S, "refresh_tokens": REFRESH_KEEP_S, "idempotency_keys": RETENTION_S}


async def test_each_sweep_query_uses_its_index_on_a_large_table(
    pool: asyncpg.Pool, user_factory: Any
) -> None:
    user = await user_factory()
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:  # rolled back: the shared tables keep only what the other tests put there
            plans = {}
            for table, ((live, live_arg), (doomed, doomed_arg)) in _FILL.items():
                await conn.execute(live, LIVE, live_arg(user))
                await conn.execute(doomed, DOOMED, doomed_arg(user))
                await conn.execute(f"ANALYZE {table}")
                rows = await conn.fetch(f"EXPLAIN {_DOOMED[table]}", 500, _AGE[table])
                plans[table] = "\n".join(r[0] for r in rows)
            # The sweep itself, on this data, finds exactly the doomed rows.
            for table in _FILL:
                found = await conn.fetch(_DOOMED[table], 10 * DOOMED, _AGE[table])
                assert len(found) >= DOOMED, table
        finally:
            await tx.rollback()
    for table, index in _INDEX.items():
        assert index in plans[table], f"{table}:\n{plans[table]}"
