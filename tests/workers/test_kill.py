"""`python -m workers` killed with SIGKILL in the middle of a batch: another one finishes the work,
every event is published and every push sent at least once, and the duplicates are bounded."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hub.outbox import enqueue
from tests.services import Services
from tests.workers.conftest import Recorder, add_device, start_worker_process
from tests.workers.fake_fcm import FakeFcm

EVENTS = 400
HOLD_AFTER = 150


async def _start_worker(
    services: Services, fcm: FakeFcm, tmp_path: Path, name: str
) -> asyncio.subprocess.Process:
    process, _log = await start_worker_process(
        services,
        tmp_path,
        name,
        FCM_CREDENTIALS_FILE=fcm.credentials_file(tmp_path),
        FCM_ENDPOINT=fcm.url,
    )
    return process


async def _until(predicate: Any, within: float, what: str) -> None:
    async with asyncio.timeout(within):
        while not await predicate():  # noqa: ASYNC110 - polls other processes' state; no event to wait on
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_sigkill_mid_batch_loses_nothing(
    pool: asyncpg.Pool,
    services: Services,
    fcm: FakeFcm,
    recorder: Recorder,
    user_factory: Any,
    tmp_path: Path,
) -> None:
    user = await user_factory()
    token = await add_device(pool, user)
    channel = f"user:{user.id}"
    await recorder.subscribe(channel)
    async with pool.acquire() as conn, conn.transaction():
        for i in range(EVENTS // 2):
            await enqueue(
                conn,
                "NOTIFICATION",
                {"id": str(i), "type": "system", "title": f"Event {i}", "body": "b"},
                user_ids=[user.id],
                push={"title": f"Event {i}"},
            )
    fcm.hold_after = HOLD_AFTER  # FCM stalls every send after this many: the batch cannot finish

    first = await _start_worker(services, fcm, tmp_path, "first")

    async def trickle() -> None:
        # More events committed while the first worker runs, so its relay is busy when it dies.
        for i in range(EVENTS // 2, EVENTS):
            async with pool.acquire() as conn, conn.transaction():
                await enqueue(
                    conn,
                    "NOTIFICATION",
                    {"id": str(i), "type": "system", "title": f"Event {i}", "body": "b"},
                    user_ids=[user.id],
                    push={"title": f"Event {i}"},
                )
            await asyncio.sleep(0.005)

    feeder = asyncio.create_task(trickle())
    try:

        async def stalled() -> bool:
            return len(fcm.received) >= HOLD_AFTER and len(fcm.attempts) > HOLD_AFTER

        await _until(stalled, 60, "the first worker to be stalled mid-batch")
        first.send_signal(signal.SIGKILL)
        await first.wait()
    finally:
        await feeder
    sent_before_kill = len(fcm.received)
    owed = await pool.fetchval("SELECT count(*) FROM push_jobs WHERE user_id = $1", user.id)
    assert owed > 0  # the killed batch was not marked done: it is still owed

    fcm.hold_after = None
    fcm.released.set()
    second = await _start_worker(services, fcm, tmp_path, "second")
    try:

        async def finished() -> bool:
            unpublished = await pool.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL AND $1 = ANY(channels)", channel
            )
            jobs = await pool.fetchval("SELECT count(*) FROM push_jobs WHERE user_id = $1", user.id)
            return unpublished == 0 and jobs == 0

        await _until(finished, 90, "the second worker to finish")
        await recorder.wait_for(
            lambda: len({f["data"]["id"] for f in recorder.frames.get(channel, [])}) == EVENTS
        )
    finally:
        second.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(second.wait(), 30)
    assert code == 0  # SIGTERM is a clean stop

    events = Counter(f["data"]["id"] for f in recorder.frames[channel])
    pushes = Counter(m["data"]["notificationId"] for m in fcm.sent_to(token))
    assert set(events) == {str(i) for i in range(EVENTS)}  # every event published at least once
    assert set(pushes) == {str(i) for i in range(EVENTS)}  # every push sent at least once
    event_dups = sum(events.values()) - EVENTS
    push_dups = sum(pushes.values()) - EVENTS
    print(
        f"\nkill test: {sent_before_kill} pushes before SIGKILL,"
        f" duplicates: events {event_dups}, pushes {push_dups}"
    )
    # At least once, and no more than one batch again: the relay's (200 rows), the push sender's (500 jobs).
    assert event_dups <= 200
    assert 1 <= push_dups <= 500  # >= 1: the kill really landed inside a push batch that had sent some
    dead = await pool.fetchval("SELECT count(*) FROM push_dead_letters WHERE user_id = $1", user.id)
    assert dead == 0
