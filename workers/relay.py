"""The outbox relay: publishes committed server events to the broker (and the pushes a row asks for).

At least once, never lost: a batch of rows is claimed with FOR UPDATE SKIP LOCKED in one
transaction, published, turned into push jobs and marked published in that same transaction. A
crash after publishing and before the commit leaves the rows unpublished and unlocked, so the next
relay publishes them again (the hub drops a user's duplicates by feedSeq, an order's by seq); push
jobs are unique per (row, user), so a re-run never queues a push twice. Relays side by side each
take different rows.

A user channel of a feed event gets the frame with that user's `feedSeq` (the row's feed_seqs);
an order channel and a control event (SESSION_REVOKED) get the plain frame. Pushes come from
domain.notify (in the transaction of the change); the relay queues one only for a row whose
`push` asks for it explicitly, never on its own for ORDER_UPDATE or NEW_APPLICATION."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from domain.notify import queue_push
from hub.broker import Broker
from hub.outbox import OUTBOX_CHANNEL
from hub.publish import encode_frame, feed_frame
from workers.listen import batch_step, supervise_worker
from workers.metrics import WorkerMetrics

log = logging.getLogger("gigwire.workers.relay")

_CLAIM = (
    "SELECT id, event_type, channels, payload, push, feed_seqs, created_at FROM outbox"
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


def _users_of(channels: list[str]) -> list[str]:
    return [c.removeprefix("user:") for c in channels if c.startswith("user:")]


def push_text(row: asyncpg.Record | Mapping[str, Any]) -> PushText | None:
    """The push an outbox row explicitly asks for, or None (no `push`, or {"skip": true}). A `push`
    object may set userIds (default: the row's users), type, title, body and data; the title and
    body default to the payload's (a NOTIFICATION's)."""
    spec: dict[str, Any] = dict(row["push"] or {})
    if not spec or spec.get("skip"):
        return None
    event, payload = row["event_type"], dict(row["payload"])
    users = [str(u) for u in spec["userIds"]] if "userIds" in spec else _users_of(row["channels"])
    type_ = str(payload.get("type", "system")) if event == "NOTIFICATION" else event.lower()
    data: dict[str, Any] = {"type": event, "outboxId": str(row["id"])}
    if event == "NOTIFICATION":
        data.update(notificationId=payload.get("id"), notificationType=type_)
    order_id = payload.get("orderId")
    return PushText(
        user_ids=users,
        type=str(spec.get("type", type_)),
        title=str(spec.get("title", payload.get("title", ""))) or "gigwire",
        body=str(spec.get("body", payload.get("body", ""))),
        data={**data, **dict(spec.get("data") or {})},
        order_id=str(order_id) if order_id is not None else None,
    )


def row_frames(row: asyncpg.Record | Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """(channel, frame bytes) of one outbox row: a user's feed entry carries its feedSeq."""
    seqs = row["feed_seqs"] or []
    plain: bytes | None = None
    out: list[tuple[str, bytes]] = []
    for i, channel in enumerate(row["channels"]):
        seq = seqs[i] if i < len(seqs) else None
        if seq is not None:
            out.append((channel, feed_frame(row["event_type"], row["payload"], int(seq)).data))
        else:
            if plain is None:
                plain = encode_frame(row["event_type"], row["payload"])
            out.append((channel, plain))
    return out


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
                for channel, frame in row_frames(row):
                    await self._broker.publish(channel, frame)
                self._metrics.outbox_frames.inc(len(row["channels"]))
                text = push_text(row)
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
