"""The outbox relay: publishes committed server events to the broker and queues their pushes.

At least once, never lost: a batch of rows is claimed with FOR UPDATE SKIP LOCKED in one
transaction, published, turned into push jobs and marked published in that same transaction. A
crash after publishing and before the commit leaves the rows unpublished and unlocked, so the next
relay publishes them again (clients drop duplicates by id); push jobs are unique per (row, user),
so a re-run never queues a push twice. Relays side by side each take different rows."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from domain.notify import queue_push
from hub.broker import Broker
from hub.outbox import OUTBOX_CHANNEL
from hub.publish import encode_frame
from workers.listen import batch_step, supervise_worker
from workers.metrics import WorkerMetrics

if TYPE_CHECKING:
    from hub.db import Conn

log = logging.getLogger("gigwire.workers.relay")

_CLAIM = (
    "SELECT id, event_type, channels, payload, push, created_at FROM outbox"
    " WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
)


@dataclass(frozen=True)
class PushText:
    """What one event's push says and to whom."""

    user_ids: list[str]
    type: str
    title: str
    body: str
    data: dict[str, Any]
    order_id: str | None = None


def _money(amount: Any, currency: str) -> str:
    if not isinstance(amount, int):
        return ""
    return f"{amount // 100}.{amount % 100:02d} {currency}"


_ORDER_TEXT = {
    "pending_payment": ("New order", "“{gig}” is waiting for payment."),
    "in_progress": ("Order funded", "Payment for “{gig}” is in escrow; work can start."),
    "submitted": ("Work submitted", "The work for “{gig}” was delivered; review and approve it."),
    "approved": ("Order approved", "“{gig}” was approved and the payment released."),
    "completed": ("Order completed", "“{gig}” is complete and the payment released."),
    "disputed": ("Order disputed", "“{gig}” is in dispute; support will look into it."),
    "cancelled": ("Order cancelled", "“{gig}” was cancelled."),
}


def _users_of(channels: list[str]) -> list[str]:
    return [c.removeprefix("user:") for c in channels if c.startswith("user:")]


async def push_text(conn: Conn, row: asyncpg.Record | Mapping[str, Any]) -> PushText | None:
    """The push an outbox row asks for, or None. ORDER_UPDATE and NEW_APPLICATION push to their
    users by default (not to the actor of an order change); NOTIFICATION only when the row's
    `push` says so. A `push` object may set userIds, type, title, body and data, or be
    {"skip": true}."""
    spec: dict[str, Any] = dict(row["push"] or {})
    if spec.get("skip"):
        return None
    event, payload = row["event_type"], dict(row["payload"])
    users = [str(u) for u in spec["userIds"]] if "userIds" in spec else _users_of(row["channels"])
    data: dict[str, Any] = {"type": event, "outboxId": str(row["id"])}
    order_id: str | None = None
    if event == "ORDER_UPDATE":
        order_id = str(payload.get("orderId"))
        actor = payload.get("actorId")
        users = [u for u in users if u != actor]
        status = str(payload.get("status"))
        if status == "in_progress" and payload.get("previousStatus") == "submitted":
            title, body = "Revision requested", "Changes were requested on “{gig}”."
        else:
            title, body = _ORDER_TEXT.get(status, ("Order updated", "“{gig}” is now " + status + "."))
        gig = await conn.fetchval(
            "SELECT g.title FROM orders o JOIN gigs g ON g.id = o.gig_id WHERE o.id = $1::uuid", order_id
        )
        body = body.format(gig=gig or "your order")
        data.update(orderId=order_id, status=status, escrowState=payload.get("escrowState"))
        type_ = "order_update"
    elif event == "NEW_APPLICATION":
        gig_row = await conn.fetchrow(
            "SELECT title, currency FROM gigs WHERE id = $1::uuid", str(payload.get("gigId"))
        )
        gig_title = gig_row["title"] if gig_row else "your gig"
        title = f"New application for “{gig_title}”"[:200]
        bid = _money(payload.get("bidAmount"), gig_row["currency"] if gig_row else "")
        body = f"A doer bid {bid}; review it." if bid else "Review the new application."
        data.update(gigId=payload.get("gigId"), applicationId=payload.get("applicationId"))
        type_ = "new_application"
    else:
        if not spec:
            return None
        title, body = str(payload.get("title", "")), str(payload.get("body", ""))
        type_ = str(payload.get("type", "system"))
        data.update(notificationId=payload.get("id"), notificationType=type_)
    return PushText(
        user_ids=users,
        type=str(spec.get("type", type_)),
        title=str(spec.get("title", title)) or "gigwire",
        body=str(spec.get("body", body)),
        data={**data, **dict(spec.get("data") or {})},
        order_id=order_id,
    )


class Relay:
    """Moves outbox rows to the broker and to push jobs; one instance per worker process."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: Broker,
        metrics: WorkerMetrics,
        *,
        batch_size: int = 200,
        poll_interval: float = 1.5,
    ) -> None:
        self._pool = pool
        self._broker = broker
        self._metrics = metrics
        self.batch_size = batch_size
        self.poll_interval = poll_interval

    async def run_once(self) -> int:
        """Claim, publish, queue pushes and mark one batch; return how many rows it published.
        Raises (and commits nothing) when the broker or the database fails mid-batch."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, self.batch_size)
            if not rows:
                return 0
            for row in rows:
                frame = encode_frame(row["event_type"], row["payload"])
                for channel in row["channels"]:
                    await self._broker.publish(channel, frame)
                self._metrics.outbox_frames.inc(len(row["channels"]))
                text = await push_text(conn, row)
                if text is not None:
                    for user_id in text.user_ids:
                        queued = await queue_push(
                            conn,
                            user_id,
                            text.type,
                            text.title,
                            text.body,
                            text.data,
                            order_id=text.order_id,
                            outbox_id=row["id"],
                        )
                        if queued is not None:
                            self._metrics.push_jobs_queued.labels(text.type).inc()
            await conn.execute(
                "UPDATE outbox SET published_at = now(), attempts = attempts + 1"
                " WHERE id = ANY($1::bigint[])",
                [r["id"] for r in rows],
            )
        now = time.time()
        for row in rows:
            self._metrics.outbox_published.labels(row["event_type"]).inc()
            self._metrics.outbox_lag.observe(max(0.0, now - row["created_at"].timestamp()))
        return len(rows)

    async def run(self, wake: asyncio.Event, stopping: asyncio.Event) -> None:
        """Publish until `stopping` is set: a full batch goes straight on to the next; otherwise
        wait for `wake` (NOTIFY on the outbox channel) or the poll interval. Failures are logged and
        counted and retried with backoff from 1 s to 60 s."""
        step = batch_step(self.run_once, self.batch_size, wake, stopping, self.poll_interval)
        await supervise_worker(
            "relay", step, self._metrics, stopping, logger=log, message="relay batch failed; retrying"
        )


__all__ = ["OUTBOX_CHANNEL", "PushText", "Relay", "push_text"]
