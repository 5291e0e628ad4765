"""Writing server events into the transactional outbox, inside the caller's transaction.

A feed event (ORDER_UPDATE, NEW_APPLICATION, NOTIFICATION) addressed to users is also appended to
each user's durable feed (hub/feed.py) in that transaction, and the row keeps each user channel's
feedSeq (`feed_seqs`, parallel to `channels`) for the relay to publish with."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import asyncpg
from msgspec import Struct

from hub import feed
from hub.events import NewApplication, Notification, OrderUpdate, to_wire

OUTBOX_CHANNEL = "gigwire_outbox"  # the PostgreSQL NOTIFY channel the relay listens on

EventType = Literal["ORDER_UPDATE", "NEW_APPLICATION", "NOTIFICATION", "SESSION_REVOKED"]
Payload = OrderUpdate | NewApplication | Notification
"""The typed data of each outbox event (hub.events); a mapping of the same wire fields still works."""


async def enqueue(
    conn: asyncpg.Connection,
    event_type: EventType,
    payload: Payload | Mapping[str, Any],
    *,
    user_ids: Iterable[str] = (),
    order_id: str | None = None,
    push: Mapping[str, Any] | None = None,
) -> int:
    """Queue one server event for `user:<id>` of every user (and `order:<id>` when given), with an
    optional push job. Call inside the transaction of the change: the event is sent if and only if
    that transaction commits. A feed event gets each user's next feedSeq here (feed.append), so
    its users' feed counters stay locked until the caller commits. Returns the outbox row id."""
    users = list(dict.fromkeys(str(u) for u in user_ids))
    channels = [f"user:{u}" for u in users]
    if order_id is not None:
        channels.append(f"order:{order_id}")
    if not channels:
        raise ValueError("an outbox event needs at least one user or order")
    # The row keeps the wire form (a jsonb object); the relay encodes it as the frame's data.
    stored = to_wire(payload) if isinstance(payload, Struct) else dict(payload)
    feed_seqs: list[int | None] | None = None
    if event_type in feed.FEED_TYPES and users:
        # Appended before the outbox row: a user's later event then gets a later outbox id too
        # (its counter stays locked until this commits), so the relay publishes in feedSeq order.
        seqs = await feed.append(conn, users, event_type, stored)
        feed_seqs = [seqs[u] for u in users] + ([None] if order_id is not None else [])
    row_id: int = await conn.fetchval(
        "INSERT INTO outbox (event_type, channels, payload, push, feed_seqs)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id",
        event_type,
        channels,
        stored,
        dict(push) if push is not None else None,
        feed_seqs,
    )
    # NOTIFY is delivered at commit and not at all on rollback: exactly the outbox contract.
    await conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")
    return row_id
