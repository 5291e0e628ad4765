"""The outbox relay over real PostgreSQL and Redis: publish, push jobs, crash mid-batch, side by side."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg
import pytest

from domain.notify import notify
from hub.broker import Broker
from hub.outbox import enqueue
from hub.settings import Settings
from hub.store import create_store
from tests.factories import make_order
from tests.workers.conftest import Recorder
from workers import WorkerSet
from workers.fcm import LogSender
from workers.metrics import WorkerMetrics
from workers.relay import Relay


async def _drain(relay: Relay) -> None:
    while await relay.run_once():
        pass


async def _order_update(
    pool: asyncpg.Pool, client: Any, doer: Any, order_id: str, push: Any = None, **extra: Any
) -> int:
    payload = {
        "orderId": order_id,
        "status": "completed",
        "escrowState": "released",
        "previousStatus": "submitted",
        "actorId": client.id,
        "updatedAt": 1_700_000_000_000,
        **extra,
    }
    async with pool.acquire() as conn, conn.transaction():
        return await enqueue(
            conn, "ORDER_UPDATE", payload, user_ids=[client.id, doer.id], order_id=order_id, push=push
        )


async def test_publishes_each_channel_with_each_users_feed_seq_and_marks(
    pool: asyncpg.Pool, broker: Broker, recorder: Recorder, metrics: WorkerMetrics, user_factory: Any
) -> None:
    client, doer = await user_factory(), await user_factory()
    order_id = await make_order(pool, client, doer, status="submitted")
    channels = [f"user:{client.id}", f"user:{doer.id}", f"order:{order_id}"]
    await recorder.subscribe(*channels)
    row_id = await _order_update(pool, client, doer, order_id)
    await _drain(Relay(pool, broker, metrics))
    await recorder.wait_for(lambda: all(recorder.frames.get(c) for c in channels))
    for channel in channels:
        (frame,) = recorder.frames[channel]
        assert frame["type"] == "ORDER_UPDATE" and frame["data"]["orderId"] == order_id
        assert frame["data"]["status"] == "completed"
        # Each user's frame carries their own feedSeq (their first event); the order's none.
        assert frame["data"].get("feedSeq") == (None if channel.startswith("order:") else 1)
    assert await pool.fetchval("SELECT published_at IS NOT NULL FROM outbox WHERE id = $1", row_id)
    # Pushes come from domain.notify (issue 12): the relay invents none for ORDER_UPDATE.
    assert await pool.fetchval("SELECT count(*) FROM push_jobs WHERE outbox_id = $1", row_id) == 0


async def test_new_application_is_published_without_a_relay_push(
    pool: asyncpg.Pool, broker: Broker, metrics: WorkerMetrics, user_factory: Any
) -> None:
    client, doer = await user_factory(), await user_factory()
    order_id = await make_order(pool, client, doer)
    gig_id = await pool.fetchval("SELECT gig_id::text FROM orders WHERE id = $1", order_id)
    async with pool.acquire() as conn, conn.transaction():
        row_id = await enqueue(
            conn,
            "NEW_APPLICATION",
            {"gigId": gig_id, "applicationId": "a-1", "doerId": doer.id, "bidAmount": 125_050},
            user_ids=[client.id],
        )
    await _drain(Relay(pool, broker, metrics))
    assert await pool.fetchval("SELECT published_at IS NOT NULL FROM outbox WHERE id = $1", row_id)
    # Pushes come from domain.notify (issue 12): the relay invents none for NEW_APPLICATION.
    assert await pool.fetchval("SELECT count(*) FROM push_jobs WHERE outbox_id = $1", row_id) == 0


async def test_notify_keeps_inbox_row_sends_event_and_queues_push(
    pool: asyncpg.Pool, broker: Broker, recorder: Recorder, metrics: WorkerMetrics, user_factory: Any
) -> None:
    user = await user_factory()
    await recorder.subscribe(f"user:{user.id}")
    async with pool.acquire() as conn, conn.transaction():
        nid = await notify(conn, user.id, "payment", "Payout sent", "₹900 is on its way.", {"amount": 90000})
    await _drain(Relay(pool, broker, metrics))
    await recorder.wait_for(lambda: recorder.frames.get(f"user:{user.id}"))
    (frame,) = recorder.frames[f"user:{user.id}"]
    assert frame["type"] == "NOTIFICATION"
    assert frame["data"]["id"] == nid and frame["data"]["title"] == "Payout sent"
    assert isinstance(frame["data"]["createdAt"], int)
    row = await pool.fetchrow("SELECT * FROM notifications WHERE id = $1", nid)
    assert row is not None and row["read_at"] is None and row["data"] == {"amount": 90000}
    (job,) = await pool.fetch("SELECT * FROM push_jobs WHERE user_id = $1", user.id)
    assert job["outbox_id"] is None  # queued by notify itself, not a second time by the relay
    assert job["data"]["notificationId"] == nid and job["data"]["amount"] == "90000"


async def test_notify_respects_in_app_and_push_preferences(pool: asyncpg.Pool, user_factory: Any) -> None:
    user = await user_factory()
    await pool.execute(
        "INSERT INTO notification_preferences (user_id, type, in_app, push)"
        " VALUES ($1, 'review', false, true), ($1, 'system', true, false)",
        user.id,
    )
    async with pool.acquire() as conn, conn.transaction():
        quiet = await notify(conn, user.id, "review", "New review", "5 stars")
        inbox_only = await notify(conn, user.id, "system", "Welcome", "Hello")
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE id = $1", quiet) == 0
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE id = $1", inbox_only) == 1
    types = [r["type"] for r in await pool.fetch("SELECT type FROM push_jobs WHERE user_id = $1", user.id)]
    assert types == ["review"]
    with pytest.raises(ValueError):
        async with pool.acquire() as conn, conn.transaction():
            await notify(conn, user.id, "Bad Type!", "t", "b")


async def test_rolled_back_change_is_never_published(
    pool: asyncpg.Pool, broker: Broker, metrics: WorkerMetrics, user_factory: Any
) -> None:
    user = await user_factory()
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, "NOTIFICATION", {"id": "x"}, user_ids=[user.id])
            raise RuntimeError("the change failed")
    await _drain(Relay(pool, broker, metrics))
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE $1 = ANY(channels)", f"user:{user.id}") == 0


class CrashingBroker:
    """Publishes through a real broker, then fails on publish number `after + 1`: a worker dying
    between publishing some of a batch and committing it."""

    def __init__(self, inner: Broker, after: int) -> None:
        self.inner = inner
        self.left = after

    async def publish(self, channel: str, data: bytes) -> None:
        if self.left == 0:
            raise ConnectionError("worker died mid-batch")
        self.left -= 1
        await self.inner.publish(channel, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_crash_mid_batch_republishes_everything_and_queues_each_push_once(
    pool: asyncpg.Pool, broker: Broker, recorder: Recorder, metrics: WorkerMetrics, user_factory: Any
) -> None:
    client, doer = await user_factory(), await user_factory()
    order_id = await make_order(pool, client, doer)
    await recorder.subscribe(f"user:{doer.id}")
    # Each row asks for its push explicitly (the relay queues none on its own).
    asked = {"userIds": [doer.id], "title": "Order completed"}
    ids = [await _order_update(pool, client, doer, order_id, push=asked, seq=i) for i in range(30)]
    crashing = Relay(pool, CrashingBroker(broker, after=25), metrics, batch_size=200)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await crashing.run_once()
    assert (
        await pool.fetchval("SELECT count(*) FROM outbox WHERE id = ANY($1) AND published_at IS NULL", ids)
        == 30
    )
    assert await pool.fetchval("SELECT count(*) FROM push_jobs WHERE outbox_id = ANY($1)", ids) == 0
    await _drain(Relay(pool, broker, metrics))
    doer_frames = recorder.frames.setdefault(f"user:{doer.id}", [])
    await recorder.wait_for(lambda: len({f["data"]["seq"] for f in doer_frames}) == 30)
    seen = Counter(f["data"]["seq"] for f in doer_frames)
    assert set(seen) == set(range(30))  # every event at least once
    # Duplicates only from the crashed batch: each row publishes to 3 channels, the first 25
    # publishes reached rows 0..8 and the doer's channel is the second of each row's three.
    assert sum(seen.values()) - 30 <= 9
    assert await pool.fetchval("SELECT count(*) FROM push_jobs WHERE outbox_id = ANY($1)", ids) == 30
    assert (
        await pool.fetchval("SELECT count(*) FROM outbox WHERE id = ANY($1) AND published_at IS NULL", ids)
        == 0
    )


async def test_relays_side_by_side_publish_each_row_once(
    pool: asyncpg.Pool, broker: Broker, recorder: Recorder, user_factory: Any
) -> None:
    user = await user_factory()
    channel = f"user:{user.id}"
    await recorder.subscribe(channel)
    async with pool.acquire() as conn, conn.transaction():
        for i in range(300):
            await enqueue(conn, "NOTIFICATION", {"id": str(i), "type": "system"}, user_ids=[user.id])
    relays = [Relay(pool, broker, WorkerMetrics(), batch_size=20) for _ in range(4)]
    await asyncio.gather(*(_drain(r) for r in relays))
    await recorder.wait_for(lambda: len(recorder.frames.get(channel, [])) >= 300)
    await asyncio.sleep(0.2)  # let any duplicate arrive before counting
    seen = Counter(f["data"]["id"] for f in recorder.frames[channel])
    assert len(seen) == 300 and set(seen.values()) == {1}
    counts = [r._metrics.outbox_published.labels("NOTIFICATION")._value.get() for r in relays]
    assert sum(counts) >= 300 and sum(1 for c in counts if c) >= 2  # the work was shared


async def test_worker_set_wakes_on_notify_without_polling(
    pool: asyncpg.Pool, broker: Broker, recorder: Recorder, settings: Settings, user_factory: Any
) -> None:
    user = await user_factory()
    await recorder.subscribe(f"user:{user.id}")
    workers = WorkerSet(pool, broker, create_store(None, "t:"), settings, sender=LogSender())
    workers.relay.poll_interval = 3600  # only a NOTIFY can wake it within the test's time
    workers.start()
    try:
        await asyncio.wait_for(workers.wakeups.connected.wait(), 10)
        await asyncio.sleep(0.3)  # the first (startup) batch has run and the relay is waiting
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, "NOTIFICATION", {"id": "woken"}, user_ids=[user.id])
        await recorder.wait_for(lambda: recorder.frames.get(f"user:{user.id}"), within=20)
    finally:
        await workers.stop()
    assert recorder.frames[f"user:{user.id}"][0]["data"] == {"id": "woken", "feedSeq": 1}


async def test_listener_reconnects_after_its_connection_is_killed(pool: asyncpg.Pool) -> None:
    from workers.listen import Wakeups

    metrics = WorkerMetrics()
    wakeups = Wakeups(pool, ["gigwire_test_wake"], metrics)
    wakeups.start()
    try:
        await asyncio.wait_for(wakeups.connected.wait(), 10)
        event = wakeups.event("gigwire_test_wake")
        event.clear()
        await pool.execute("NOTIFY gigwire_test_wake")
        await asyncio.wait_for(event.wait(), 10)
        # Kill the LISTEN connection's backend, as a database restart or a network cut would.
        killed = await pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN %gigwire_test_wake%'"
        )
        assert killed >= 1
        async with asyncio.timeout(30):
            while metrics.registry.get_sample_value("gigwire_worker_listener_reconnects_total") != 1:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await asyncio.wait_for(wakeups.connected.wait(), 10)
        event.clear()
        await pool.execute("NOTIFY gigwire_test_wake")
        await asyncio.wait_for(event.wait(), 10)
    finally:
        await wakeups.stop()
