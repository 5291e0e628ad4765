"""Chat pushes waiting in `chat_push_pending` (0023_chat_wal.sql) become push jobs.

Storing a chat message writes no push job: the statement that stores a batch folds its newest
message per chat and recipient into one unlogged waiting row. `promote` takes a batch of those rows
(FOR UPDATE SKIP LOCKED, so side-by-side senders never take the same one) and, in the same
transaction, drops each whose recipient watches that chat live and turns the others into a
`chat_message` push job, which the push sender then sends, retries and dead-letters like any other.
Most messages are seen live; those cost no logged row at all.

The waiting table is unlogged, so PostgreSQL's crash recovery empties it, and `chat_push_epoch`
with it. `recover` notices the empty epoch and queues again, from the messages of the last
`RECOVER_WINDOW_S` seconds, a push for every chat whose recipient has not read up to its newest
message: a crash costs at most a repeated push (collapsed on the phone under the chat's key),
never a missing one for a message stored in that window."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:
    from hub.db import Conn
    from workers.metrics import WorkerMetrics

# (user_id, order_id) -> True when the user watches that order's chat live right now.
SeenLive = Callable[[str, str], Awaitable[bool]]

RECOVER_WINDOW_S = 900
_RECOVER_LOCK = 0x6777_6370  # advisory lock: one sender recovers, the others wait and see it done

_TAKE = """
WITH taken AS (
    DELETE FROM chat_push_pending p
     USING (SELECT order_id, user_id FROM chat_push_pending LIMIT $1 FOR UPDATE SKIP LOCKED) s
     WHERE p.order_id = s.order_id AND p.user_id = s.user_id
    RETURNING p.*
)
SELECT t.order_id, t.user_id, t.seq, t.unread, m.id AS message_id, m.sender_id, m.text,
       jsonb_array_length(m.attachments) AS files, coalesce(u.name, 'New message') AS sender_name
  FROM taken t
  JOIN messages m ON m.id = t.message_id
  LEFT JOIN users u ON u.id = m.sender_id
"""

_QUEUE = """
INSERT INTO push_jobs (user_id, type, title, body, data, collapse_key, order_id)
SELECT user_id, 'chat_message', left(title, 200), left(body, 1000),
       jsonb_build_object('type', 'CHAT_MESSAGE', 'orderId', order_id::text, 'messageId', message_id::text,
                          'seq', seq::text, 'senderId', sender_id::text, 'unread', unread::text),
       'chat-' || order_id::text, order_id
  FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::uuid[], $6::int[], $7::text[], $8::text[])
    AS t(user_id, order_id, message_id, seq, sender_id, unread, title, body)
"""

_RECOVER = """
INSERT INTO chat_push_pending (order_id, user_id, message_id, seq, unread)
SELECT DISTINCT ON (m.order_id, r.recipient)
       m.order_id, r.recipient, m.id, m.seq, count(*) OVER (PARTITION BY m.order_id, r.recipient)
  FROM messages m
 CROSS JOIN LATERAL (SELECT gigwire_chat_recipient(m.order_id, m.sender_id) AS recipient) r
  LEFT JOIN message_reads mr ON mr.order_id = m.order_id AND mr.user_id = r.recipient
 WHERE m.id BETWEEN $1 AND $2
   AND m.created_at >= now() - make_interval(secs => $3)
   AND r.recipient IS NOT NULL AND r.recipient <> m.sender_id
   AND m.seq > coalesce(mr.last_read_seq, 0)
 ORDER BY m.order_id, r.recipient, m.seq DESC
ON CONFLICT (order_id, user_id) DO NOTHING
"""


def _body(text: str, files: int) -> str:
    """What the push says: the message, or its attachments when it has no text."""
    body = text.strip()
    if body:
        return body
    return "Sent an attachment" if files <= 1 else f"Sent {files} attachments"


def uuid7_bound(unix_ms: int, *, high: bool) -> uuid.UUID:
    """The lowest (or highest) UUIDv7 of millisecond `unix_ms`: messages ids (gigwire_uuid7) of
    a time range lie between two of these, so the primary key finds them."""
    tail = (1 << 80) - 1 if high else 0
    return uuid.UUID(int=(unix_ms << 80) | tail)


async def recover(pool: asyncpg.Pool, window_s: int = RECOVER_WINDOW_S) -> int:
    """When crash recovery emptied the waiting table (its epoch row is gone), queue the pushes of
    the last `window_s` seconds again; return how many chats got one (0 when nothing was lost)."""
    if await pool.fetchval("SELECT count(*) FROM chat_push_epoch") == 1:
        return 0
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _RECOVER_LOCK)
        if await conn.fetchval("SELECT count(*) FROM chat_push_epoch") == 1:
            return 0  # another sender recovered while this one waited
        now_ms = int(time.time() * 1000)
        status = await conn.execute(
            _RECOVER,
            uuid7_bound(now_ms - window_s * 1000, high=False),
            uuid7_bound(now_ms + 60_000, high=True),
            float(window_s),
        )
        await conn.execute("INSERT INTO chat_push_epoch DEFAULT VALUES ON CONFLICT DO NOTHING")
    return int(status.split()[-1])


async def promote(conn: Conn, limit: int, seen_live: SeenLive | None, metrics: WorkerMetrics) -> int:
    """Take up to `limit` waiting chat pushes (call inside a transaction): drop those seen live,
    queue the others as push jobs. Returns how many were taken."""
    rows = await conn.fetch(_TAKE, limit)
    if seen_live is None:
        live = [False] * len(rows)
    else:
        live = await asyncio.gather(*(seen_live(str(r["user_id"]), str(r["order_id"])) for r in rows))
    queued = [r for r, watching in zip(rows, live, strict=True) if not watching]
    if len(queued) < len(rows):
        metrics.push_skipped.labels("seen_live").inc(len(rows) - len(queued))
    if queued:
        await conn.execute(
            _QUEUE,
            [r["user_id"] for r in queued],
            [r["order_id"] for r in queued],
            [r["message_id"] for r in queued],
            [r["seq"] for r in queued],
            [r["sender_id"] for r in queued],
            [r["unread"] for r in queued],
            [r["sender_name"] for r in queued],
            [_body(r["text"], r["files"]) for r in queued],
        )
        metrics.push_jobs_queued.labels("chat_message").inc(len(queued))
    return len(rows)
