"""Creating notifications and push jobs inside the caller's transaction.

`notify` is what any part of gigwire calls to tell a user something: an inbox row, a live
NOTIFICATION event and a push job, each only when the user's preference for the type allows that
channel, all committed or rolled back with the caller's change. What each domain event says is
domain/notices.py. Chat messages need no call: a trigger on `messages`
(sql/migrations/0006_workers.sql) queues their push in the message's transaction, and the push
sender decides at send time whether the recipient already saw it live (if not, it also writes the
inbox row and live event, through `notify` with push=False)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import asyncpg
import orjson

from hub.clock import epoch_ms
from hub.outbox import enqueue

if TYPE_CHECKING:
    from hub.db import Conn

PUSH_CHANNEL = "gigwire_push"  # NOTIFY channel that wakes the push sender

# The notification types a user can set preferences for. Other types are allowed (a slug), with
# every channel on and no preference row to change them until they are listed here.
NOTIFICATION_TYPES: tuple[str, ...] = (
    "order_update",
    "new_application",
    "application",
    "chat_message",
    "payment",
    "review",
    "system",
)
TYPE_PATTERN = re.compile(r"^[a-z_]{2,40}$")
TITLE_MAX = 200
BODY_MAX = 2000
PUSH_BODY_MAX = 1000  # FCM refuses payloads over 4 KiB; a push shows a couple of lines anyway


def push_data(data: Mapping[str, Any]) -> dict[str, str]:
    """FCM data payloads are string to string: scalars as text, anything else as JSON."""
    out: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, int | float):
            out[key] = str(value)
        else:
            out[key] = orjson.dumps(value).decode()
    return out


@dataclass(frozen=True)
class Channels:
    """Where one user wants notifications of one type: the inbox (a notifications row, `in_app`
    in SQL), live (the NOTIFICATION frame on their sessions) and push (their devices)."""

    inbox: bool = True
    live: bool = True
    push: bool = True


async def preference(conn: Conn, user_id: str, type_: str) -> Channels:
    """The channels this user wants for this notification type; all on when never set."""
    row = await conn.fetchrow(
        "SELECT in_app, live, push FROM notification_preferences WHERE user_id = $1 AND type = $2",
        user_id,
        type_,
    )
    if row is None:
        return Channels()
    return Channels(inbox=bool(row["in_app"]), live=bool(row["live"]), push=bool(row["push"]))


async def queue_push(
    conn: Conn,
    user_id: str,
    type_: str,
    title: str,
    body: str,
    data: Mapping[str, Any],
    *,
    collapse_key: str | None = None,
    priority: str = "high",
    order_id: str | None = None,
    outbox_id: int | None = None,
) -> int | None:
    """Queue one push to every device of `user_id`, committed with the caller's transaction, and
    wake the push sender at commit. Returns the job id, or None when this outbox row already
    queued one for this user (a re-run of the relay)."""
    job_id: int | None = await conn.fetchval(
        "INSERT INTO push_jobs (user_id, type, title, body, data, collapse_key, priority, order_id,"
        " outbox_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (outbox_id, user_id) DO NOTHING RETURNING id",
        user_id,
        type_,
        title[:TITLE_MAX],
        body[:PUSH_BODY_MAX],
        push_data(data),
        collapse_key,
        priority,
        order_id,
        outbox_id,
    )
    if job_id is not None:
        await conn.execute(f"NOTIFY {PUSH_CHANNEL}")
    return job_id


async def notify(
    conn: Conn,
    user_id: str,
    type: str,
    title: str,
    body: str,
    data: Mapping[str, Any] | None = None,
    *,
    push: bool = True,
) -> str:
    """Tell `user_id` something, inside the caller's transaction, on each channel their preference
    for `type` allows: inbox (a notifications row), live (a NOTIFICATION {id, type, title, body,
    data, createdAt} on `user:<id>`) and push (a push job to their devices; never with push=False,
    for a caller that pushes by itself). Returns the notification id: the inbox row's, the live
    event's and in the push's data, the same. ValueError for a malformed type, an empty or too long
    title, a too long body."""
    if not TYPE_PATTERN.fullmatch(type):
        raise ValueError(f"notification type must match {TYPE_PATTERN.pattern}, got {type!r}")
    if not 1 <= len(title) <= TITLE_MAX or len(body) > BODY_MAX:
        raise ValueError(f"title must be 1 to {TITLE_MAX} characters and body at most {BODY_MAX}")
    payload = dict(data or {})
    wants = await preference(conn, user_id, type)
    notification_id = str(uuid.uuid4())
    created = None
    if wants.inbox:
        created = await conn.fetchval(
            "INSERT INTO notifications (id, user_id, type, title, body, data)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at",
            notification_id,
            user_id,
            type,
            title,
            body,
            payload,
        )
    if wants.live:
        if created is None:
            created = await conn.fetchval("SELECT now()")
        event = {
            "id": notification_id,
            "type": type,
            "title": title,
            "body": body,
            "data": payload,
            "createdAt": epoch_ms(created),
        }
        # hub.outbox types its connection narrowly; a pooled connection proxies the same API.
        await enqueue(cast("asyncpg.Connection", conn), "NOTIFICATION", event, user_ids=[user_id])
    if push and wants.push:
        order_id = payload.get("orderId")
        await queue_push(
            conn,
            user_id,
            type,
            title,
            body,
            {**payload, "type": "NOTIFICATION", "notificationType": type, "notificationId": notification_id},
            order_id=order_id if isinstance(order_id, str) else None,
        )
    return notification_id
