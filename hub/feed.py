"""The durable user feed (sql/migrations/0009_feed.sql): every event addressed to a user is stored
with the user's next gapless `feedSeq` inside the transaction of its change, before it is published;
the hub replays it to a resuming client and refills its live sessions from it after a broker outage.

A feed frame is the event's own frame with `feedSeq` added to its data, so both transports carry it
the same way (Socket.IO has no envelope beside the data)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg

from hub.events import FEED_EVENTS
from hub.frame import Frame
from hub.publish import feed_frame

FEED_TYPES = frozenset(FEED_EVENTS)

# Users sorted, so two transactions bumping the same users lock their counters in the same order.
_APPEND = """
WITH s AS (
    INSERT INTO feed_sequences AS f (user_id, last_seq)
    SELECT u, 1 FROM unnest($1::uuid[]) AS u ORDER BY u
    ON CONFLICT (user_id) DO UPDATE SET last_seq = f.last_seq + 1
    RETURNING user_id, last_seq
)
INSERT INTO feed (user_id, seq, type, data)
SELECT s.user_id, s.last_seq, $2, $3 FROM s
RETURNING user_id::text, seq
"""


def parse_since(value: object) -> int | None:
    """A sinceFeedSeq given with the connection (`?sinceFeedSeq=`, Socket.IO `auth`): a
    non-negative integer (or its decimal string); anything else counts as not given."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 16:
        return int(value)
    if isinstance(value, int) and 0 <= value < 2**53:
        return value
    return None


async def append(
    conn: Any, user_ids: Iterable[str], event_type: str, data: Mapping[str, Any]
) -> dict[str, int]:
    """Store one event in each user's feed with their next feedSeq, inside the caller's
    transaction; returns user id -> feedSeq."""
    users = sorted(dict.fromkeys(str(u) for u in user_ids))
    if not users:
        return {}
    rows = await conn.fetch(_APPEND, users, event_type, dict(data))
    return {row[0]: int(row[1]) for row in rows}


async def last_seq(pool: asyncpg.Pool, user_id: str) -> int:
    """The user's last committed feedSeq (0 when none): every seq up to it is committed."""
    value = await pool.fetchval("SELECT last_seq FROM feed_sequences WHERE user_id = $1", user_id)
    return int(value or 0)


async def entries_after(
    pool: asyncpg.Pool, user_id: str, after: int, upto: int, limit: int = 200
) -> list[asyncpg.Record]:
    """Feed entries with after < seq <= upto, in seq order, at most `limit` (seq, type, data, created_at)."""
    return list(
        await pool.fetch(
            "SELECT seq, type, data, created_at FROM feed WHERE user_id = $1 AND seq > $2 AND seq <= $3"
            " ORDER BY seq LIMIT $4",
            user_id,
            after,
            upto,
            limit,
        )
    )


def entry_frame(row: asyncpg.Record | Mapping[str, Any]) -> Frame:
    """The frame of a stored feed entry."""
    return feed_frame(row["type"], row["data"], int(row["seq"]))


async def resumable(pool: asyncpg.Pool, user_id: str, since: int, last: int) -> bool:
    """Whether every entry after `since` up to `last` is still kept (not swept by retention)."""
    if since >= last:
        return True
    first = await pool.fetchval(
        "SELECT seq FROM feed WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT 1", user_id, since
    )
    return first is not None and int(first) == since + 1
