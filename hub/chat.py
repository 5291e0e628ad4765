"""Stored chat: messages with a gapless per-order seq, read marks, and their wire frames.

Every function takes the pool (or a connection) and does one job in PostgreSQL; the realtime
handlers (hub/handlers.py) and the REST history (rest/messages.py) both use these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from hub.db import Conn
from hub.events import Attachment, ChatMessage, encoder, to_wire
from hub.frame import Frame


def _columns(table: str = "") -> str:
    """A stored message's columns as its wire form needs them (`table.` prefixed when given)."""
    t = f"{table}." if table else ""
    return (
        f"{t}id::text AS id, {t}order_id::text AS order_id, {t}seq, {t}sender_id::text AS sender_id,"
        f" {t}text, {t}attachments, {t}client_msg_id,"
        f" (extract(epoch FROM {t}created_at) * 1000)::bigint AS created_at"
    )


_MESSAGE_COLS = _columns()

# One statement stores a whole batch (hub/chat_writer.py): resends of a clientMsgId already stored
# are answered with the stored message (`known`); the first of each new message per sender and
# clientMsgId in the batch is numbered after its order's counter, which is bumped once per order by
# the batch's count (the row lock serializes batches of one order on any process, in commit order,
# so seqs commit in order and with no gap); locks are taken in order_id order, so two batches never
# deadlock. A later duplicate inside the batch gets neither row: the writer answers it with the
# first's message. The same statement folds the batch's newest message per chat and recipient (the
# chat's other user, which the hub knows from its participant check) into the unlogged waiting row
# of its push (workers/chat_push.py), under the counter's lock, so the newest row written is the
# newest message. (A statement trigger did this before 0025: it cost the database more CPU than the
# insert, and its NOTIFY serialized every batch's commit; the push sender polls the waiting rows.)
_STORE_BATCH = f"""
WITH input AS (
    SELECT * FROM unnest($1::int[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::uuid[])
        AS t(ord, order_id, sender_id, text, attachments, client_msg_id, recipient_id)
), known AS (
    SELECT i.ord, m.id FROM input i JOIN messages m
      ON m.order_id = i.order_id AND m.sender_id = i.sender_id AND m.client_msg_id = i.client_msg_id
), fresh AS (
    SELECT DISTINCT ON (i.order_id, i.sender_id, coalesce(i.client_msg_id, i.ord::text)) i.*
      FROM input i WHERE NOT EXISTS (SELECT 1 FROM known k WHERE k.ord = i.ord)
     ORDER BY i.order_id, i.sender_id, coalesce(i.client_msg_id, i.ord::text), i.ord
), counts AS (
    SELECT order_id, count(*) AS n FROM fresh GROUP BY order_id
), bumped AS (
    INSERT INTO chat_sequences AS c (order_id, last_seq)
    SELECT order_id, n FROM counts ORDER BY order_id
    ON CONFLICT (order_id) DO UPDATE SET last_seq = c.last_seq + EXCLUDED.last_seq
    RETURNING order_id, last_seq
), numbered AS (
    SELECT f.*, b.last_seq - c.n + row_number() OVER (PARTITION BY f.order_id ORDER BY f.ord) AS seq
      FROM fresh f JOIN bumped b USING (order_id) JOIN counts c USING (order_id)
), stored AS (
    INSERT INTO messages (order_id, seq, sender_id, text, attachments, client_msg_id)
    SELECT order_id, seq, sender_id, text, attachments::jsonb, client_msg_id FROM numbered
    RETURNING *
), pushed AS (
    INSERT INTO chat_push_pending AS p (order_id, user_id, message_id, seq, unread)
    SELECT DISTINCT ON (s.order_id, n.recipient_id)
           s.order_id, n.recipient_id, s.id, s.seq, count(*) OVER (PARTITION BY s.order_id, n.recipient_id)
      FROM stored s JOIN numbered n ON n.order_id = s.order_id AND n.seq = s.seq
     WHERE n.recipient_id IS NOT NULL AND n.recipient_id <> s.sender_id
     ORDER BY s.order_id, n.recipient_id, s.seq DESC
    ON CONFLICT (order_id, user_id) DO UPDATE
       SET message_id = EXCLUDED.message_id, seq = EXCLUDED.seq, unread = p.unread + EXCLUDED.unread
)
SELECT n.ord, true AS created, {_columns("s")}
  FROM stored s JOIN numbered n ON n.order_id = s.order_id AND n.seq = s.seq
UNION ALL
SELECT k.ord, false, {_columns("m")}
  FROM known k JOIN messages m ON m.id = k.id
"""


@dataclass(frozen=True)
class Participants:
    """The two users who may use a chat: an order's client and doer, or, for a pre-order thread
    (`pre_order`, hub/threads.py), the gig's owner and the applicant."""

    client_id: str
    doer_id: str
    pre_order: bool = False

    def other(self, user_id: str) -> str:
        """The participant who is not `user_id`."""
        return self.doer_id if user_id == self.client_id else self.client_id

    def __contains__(self, user_id: object) -> bool:
        return user_id in (self.client_id, self.doer_id)


def _attachment(item: dict[str, Any]) -> Attachment:
    if "mediaId" in item:  # the one wire name that is not the field's name
        item = {("media_id" if k == "mediaId" else k): v for k, v in item.items()}
    return Attachment(**item)


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
        [_attachment(item) for item in row["attachments"]],
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


@dataclass(frozen=True)
class Outgoing:
    """One message to store: what a CHAT_MESSAGE frame asked for, from its sender."""

    order_id: str
    sender_id: str
    text: str
    attachments: list[Attachment]
    client_msg_id: str | None
    recipient_id: str | None  # the chat's other user, pushed when not watching; None: push nobody


async def store_batch(pool: asyncpg.Pool | Conn, batch: list[Outgoing]) -> list[tuple[ChatMessage, bool]]:
    """Store `batch` in one statement (one transaction), each message with its order's next seq;
    return, per message in `batch`'s order, (its stored message, True when stored by this call).
    A resend of a clientMsgId this sender already stored in the order, before or earlier in the
    batch, is answered with the message first stored (False). Raises asyncpg errors whole: nothing
    of the batch is stored then (a resend racing the same clientMsgId on another process is a
    UniqueViolationError, gone on a retry)."""
    if not batch:
        return []
    rows = await pool.fetch(
        _STORE_BATCH,
        list(range(len(batch))),
        [m.order_id for m in batch],
        [m.sender_id for m in batch],
        [m.text for m in batch],
        [encoder.encode(m.attachments).decode() for m in batch],
        [m.client_msg_id for m in batch],
        [m.recipient_id for m in batch],
    )
    answers: list[tuple[ChatMessage, bool] | None] = [None] * len(batch)
    for row in rows:
        answers[row["ord"]] = (message_data(row), bool(row["created"]))
    first: dict[tuple[str, str, str], ChatMessage] = {}
    for i, answer in enumerate(answers):
        m = batch[i]
        if answer is not None and m.client_msg_id is not None:
            first.setdefault((m.order_id, m.sender_id, m.client_msg_id), answer[0])
    out: list[tuple[ChatMessage, bool]] = []
    for i, answer in enumerate(answers):
        if answer is not None:
            out.append(answer)
            continue
        m = batch[i]  # a later duplicate inside the batch: the first's message
        assert m.client_msg_id is not None, "only a repeated clientMsgId goes unstored"
        out.append((first[(m.order_id, m.sender_id, m.client_msg_id)], False))
    return out


async def store_message(
    pool: asyncpg.Pool,
    order_id: str,
    sender_id: str,
    text: str,
    attachments: list[Attachment],
    client_msg_id: str | None,
    *,
    recipient_id: str | None,
) -> tuple[ChatMessage, bool]:
    """Store one message (a batch of one; the hub stores through hub/chat_writer.py instead)."""
    message = Outgoing(order_id, sender_id, text, attachments, client_msg_id, recipient_id)
    (answer,) = await store_batch(pool, [message])
    return answer


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
