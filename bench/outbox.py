"""Outbox latency: from the commit of a change that enqueued an event to the event's arrival on a
broker subscriber, through LISTEN/NOTIFY, the relay and Redis pub/sub.

A scratch database on PostgreSQL at 127.0.0.1:5432 (or BENCH_ADMIN_DSN) and Redis at
127.0.0.1:6379 (or BENCH_REDIS_URL, with a unique key prefix). The relay (workers/relay.py with its
LISTEN wake-ups) and a Redis subscriber run in this process, so both ends read the same clock.
Two runs: `--events` events one at a time (each committed after the previous one arrived), and
`--burst` events offered at a steady `--rate` per second, each committed by its own task.

    .venv/bin/python -m bench.outbox [--events 300] [--burst 2000] [--rate 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid

import asyncpg
import orjson

from hub.brokers import create_broker
from hub.db import create_pool, migrate_dsn
from hub.outbox import OUTBOX_CHANNEL, enqueue
from tests.services import _with_database
from workers.listen import Wakeups
from workers.metrics import WorkerMetrics
from workers.relay import Relay

ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


class Timings:
    def __init__(self) -> None:
        self.committed: dict[str, float] = {}
        self.arrived: dict[str, float] = {}
        self.event = asyncio.Event()

    def deliver(self, channel: str, data: bytes) -> None:
        frame = orjson.loads(data)
        if frame.get("type") == "NOTIFICATION":
            self.arrived.setdefault(frame["data"]["id"], time.perf_counter())
            self.event.set()

    def report(self, label: str, ids: list[str]) -> None:
        lat = sorted((self.arrived[i] - self.committed[i]) * 1000 for i in ids)
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"{label}: {len(ids)} events, p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {lat[-1]:.2f} ms")


async def _emit(pool: asyncpg.Pool, timings: Timings, user_id: str, event_id: str) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            await enqueue(conn, "NOTIFICATION", {"id": event_id, "type": "system"}, user_ids=[user_id])
        timings.committed[event_id] = time.perf_counter()


async def _until_arrived(timings: Timings, ids: list[str]) -> None:
    async with asyncio.timeout(120):
        while not all(i in timings.arrived for i in ids):
            timings.event.clear()
            await timings.event.wait()


async def run(events: int, burst: int, rate: int) -> None:
    database = f"gigwire_bench_outbox_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    dsn = _with_database(ADMIN_DSN, database)
    prefix = f"gwbench:{uuid.uuid4().hex[:8]}:"
    timings = Timings()
    subscriber = create_broker(REDIS_URL, prefix, timings.deliver)
    publisher = create_broker(REDIS_URL, prefix, lambda _c, _d: None)
    try:
        await migrate_dsn(dsn)
        pool = await create_pool(dsn, min_size=4, max_size=14)
        await subscriber.start()
        await publisher.start()
        metrics = WorkerMetrics()
        wakeups = Wakeups(pool, [OUTBOX_CHANNEL], metrics)
        relay = Relay(pool, publisher, metrics)
        stopping = asyncio.Event()
        wakeups.start()
        task = asyncio.create_task(relay.run(wakeups.event(OUTBOX_CHANNEL), stopping))
        try:
            user_id = str(
                await pool.fetchval("INSERT INTO users (phone) VALUES ('+919000000001') RETURNING id")
            )
            await subscriber.subscribe(f"user:{user_id}")
            await asyncio.wait_for(wakeups.connected.wait(), 10)
            await asyncio.sleep(1)  # the subscription is live and the relay idle
            warm = [f"w{i}" for i in range(20)]
            for i in warm:
                await _emit(pool, timings, user_id, i)
                await _until_arrived(timings, [i])
            one = [f"s{i}" for i in range(events)]
            for i in one:
                await _emit(pool, timings, user_id, i)
                await _until_arrived(timings, [i])
            timings.report("one at a time", one)
            many = [f"b{i}" for i in range(burst)]
            # Offered at a steady `rate` (each commit its own task): latency below saturation, not
            # the queueing of an overload.
            started = time.perf_counter()
            tasks = []
            for n, event_id in enumerate(many):
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(_emit(pool, timings, user_id, event_id)))
            await asyncio.gather(*tasks)
            await _until_arrived(timings, many)
            achieved = burst / (time.perf_counter() - started)
            timings.report(f"steady {rate}/s offered ({achieved:,.0f}/s done)", many)
        finally:
            stopping.set()
            await task
            await wakeups.stop()
            await pool.close()
    finally:
        await subscriber.close()
        await publisher.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(run(args.events, args.burst, args.rate))


if __name__ == "__main__":
    main()
