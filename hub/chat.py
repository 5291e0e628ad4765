"""Stored chat: messages with a gapless per-order seq, read marks, and their wire frames.

Every function takes the pool (or a connection) and does one job in PostgreSQL; the realtime
handlers (hub/handlers.py) and the REST history (rest/messages.py) both use these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from hub.events import Attachment, ChatMessage, to_wire
from hub.frame import Frame

_MESSAGE_COLS = (
    "id::text AS id, order_id::text AS order_id, seq, sender_id::text AS sender_id, text, attachments,"
    " client_msg_id, (extract(epoch FROM created_at) * 1000)::bigint AS created_at"
)

# One statement: bump the order's counter (the row lock serializes senders, in commit order) and
# insert with that seq. A unique violation (resent clientMsgId) rolls back the bump as well.
_INSERT = f"""
WITH s AS (
    INSERT INTO chat_sequences AS c (order_id, last_seq) VALUES ($1, 1)
    ON CONFLICT (order_id) DO UPDATE SET last_seq = c.last_seq + 1
    RETURNING last_seq
), m AS (
    INSERT INTO messages (order_id, seq, sender_id, text, attachments, client_msg_id)
    SELECT $1, s.last_seq, $2, $3, $4, $5 FROM s
    RETURNING *
)
SELECT {_MESSAGE_COLS} FROM m
"""


@dataclass(frozen=True)
class Participants:
    """The two users who may use an order's chat."""

    client_id: str
    doer_id: str

    def __contains__(self, user_id: object) -> bool:
        return user_id in (self.client_id, self.doer_id)


def message_data(row: asyncpg.Record | dict[str, Any]) -> ChatMessage:
    """The wire form of a stored message (CHAT_MESSAGE data, REST history item)."""
    return ChatMessage(
        row["id"],
        row["order_id"],
        row["seq"],
        row["sender_id"],
        row["text"],
        # Stored by this module from validated Attachments: rebuilt without validating again
        # (msgspec.convert costs several times the whole encode of the message).
        [Attachment(**item) for item in row["attachments"]],
        row["client_msg_id"],
        row["created_at"],
    )


def message_frame(row: asyncpg.Record | dict[str, Any]) -> Frame:
    """The CHAT_MESSAGE frame of a stored message, encoded once."""
    return Frame.encode("CHAT_MESSAGE", message_data(row))


async def participants(pool: asyncpg.Pool, order_id: str) -> Participants | None:
    """The order's client and doer, or None when there is no such order."""
    row = await pool.fetchrow("SELECT client_id::text, doer_id::text FROM orders WHERE id = $1", order_id)
    return None if row is None else Participants(row[0], row[1])


async def store_message(
    pool: asyncpg.Pool,
    order_id: str,
    sender_id: str,
    text: str,
    attachments: list[Attachment],
    client_msg_id: str | None,
) -> tuple[ChatMessage, bool]:
    """Store one message with the order's next seq; return (its wire data, True when new). A resend
    with a clientMsgId already stored by this sender in this order returns the first message, False."""
    if client_msg_id is not None:
        first = await _by_client_id(pool, order_id, sender_id, client_msg_id)
        if first is not None:
            return first, False
    try:
        row = await pool.fetchrow(_INSERT, order_id, sender_id, text, to_wire(attachments), client_msg_id)
    except asyncpg.UniqueViolationError:
        # A concurrent resend of the same clientMsgId won the race: answer with its message.
        if client_msg_id is None:
            raise
        first = await _by_client_id(pool, order_id, sender_id, client_msg_id)
        if first is None:
            raise
        return first, False
    assert row is not None
    return message_data(row), True


async def _by_client_id(
    pool: asyncpg.Pool, order_id: str, sender_id: str, client_msg_id: str
) -> ChatMessage | None:
    row = await pool.fetchrow(
        f"SELECT {_MESSAGE_COLS} FROM messages WHERE order_id = $1 AND sender_id = $2 AND client_msg_id = $3",
        order_id,
        sender_id,
        client_msg_id,
    )
    return None if row is None else message_data(row)


async def last_seq(pool: asyncpg.Pool, order_id: str) -> int:
    """The seq of the order's last committed message (0 when none). Every seq up to it is committed:
    commits happen in seq order under the counter's row lock."""
    value = await pool.fetchval("SELECT last_seq FROM chat_sequences WHERE order_id = $1", order_id)
    return int(value or 0)


async def messages_after(
    pool: asyncpg.Pool, order_id: str, after: int, upto: int, limit: int = 500
) -> list[asyncpg.Record]:
    """Messages with after < seq <= upto, in seq order, at most `limit`."""
    return list(
        await pool.fetch(
            f"SELECT {_MESSAGE_COLS} FROM messages WHERE order_id = $1 AND seq > $2 AND seq <= $3"
            " ORDER BY seq LIMIT $4",
            order_id,
            after,
            upto,
            limit,
        )
    )


async def history(
    pool: asyncpg.Pool, order_id: str, before_seq: int | None, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` messages before `before_seq` (the newest when None), oldest first, as JSON values."""
    rows = await pool.fetch(
        f"SELECT {_MESSAGE_COLS} FROM messages WHERE order_id = $1 AND ($2::bigint IS NULL OR seq < $2)"
        " ORDER BY seq DESC LIMIT $3",
        order_id,
        before_seq,
        limit,
    )
    return [to_wire(message_data(r)) for r in reversed(rows)]


async def message_order(pool: asyncpg.Pool, message_id: str) -> tuple[str, int] | None:
    """(order id, seq) of a message, or None when there is no such message."""
    row = await pool.fetchrow("SELECT order_id::text, seq FROM messages WHERE id = $1", message_id)
    return None if row is None else (row[0], int(row[1]))


async def mark_read(
    pool: asyncpg.Pool, order_id: str, user_id: str, message_id: str, seq: int
) -> tuple[int, int, bool]:
    """Move the user's read mark in the order up to `seq` (never down). Return (the mark's seq,
    readAt in epoch ms, whether it moved)."""
    row = await pool.fetchrow(
        """
        INSERT INTO message_reads AS r (order_id, user_id, last_read_seq, message_id, read_at)
        VALUES ($1, $2, $3, $4, clock_timestamp())
        ON CONFLICT (order_id, user_id) DO UPDATE
            SET last_read_seq = EXCLUDED.last_read_seq, message_id = EXCLUDED.message_id,
                read_at = EXCLUDED.read_at
            WHERE r.last_read_seq < EXCLUDED.last_read_seq
        RETURNING last_read_seq, (extract(epoch FROM read_at) * 1000)::bigint
        """,
        order_id,
        user_id,
        seq,
        message_id,
    )
    if row is not None:
        return int(row[0]), int(row[1]), True
    current = await pool.fetchrow(
        "SELECT last_read_seq, (extract(epoch FROM read_at) * 1000)::bigint FROM message_reads"
        " WHERE order_id = $1 AND user_id = $2",
        order_id,
        user_id,
    )
    assert current is not None
    return int(current[0]), int(current[1]), False


async def unread_counts(
    pool: asyncpg.Pool, user_id: str, order_id: str | None = None
) -> list[dict[str, Any]]:
    """Per order the user takes part in (or just `order_id`): messages from the other party after
    the user's read mark, with the mark and the order's last seq."""
    rows = await pool.fetch(
        """
        SELECT o.id::text AS order_id, coalesce(c.last_seq, 0) AS last_seq,
               coalesce(r.last_read_seq, 0) AS last_read_seq,
               (SELECT count(*) FROM messages m WHERE m.order_id = o.id
                  AND m.seq > coalesce(r.last_read_seq, 0) AND m.sender_id <> $1) AS unread
        FROM orders o
        LEFT JOIN chat_sequences c ON c.order_id = o.id
        LEFT JOIN message_reads r ON r.order_id = o.id AND r.user_id = $1
        WHERE (o.client_id = $1 OR o.doer_id = $1) AND ($2::uuid IS NULL OR o.id = $2)
        ORDER BY o.created_at DESC
        """,
        user_id,
        order_id,
    )
    return [
        {
            "orderId": r["order_id"],
            "unread": int(r["unread"]),
            "lastSeq": int(r["last_seq"]),
            "lastReadSeq": int(r["last_read_seq"]),
        }
        for r in rows
    ]
