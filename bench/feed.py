"""The user feed's cost: the time of a transaction that enqueues one ORDER_UPDATE for an order's two
parties (hub.outbox.enqueue; with the feed, also one feed row and one counter bump per user), and
the latency of an ORDER_UPDATE from its commit to its arrival on a real /ws session of each party,
through LISTEN/NOTIFY, the relay, Redis pub/sub and the hub.

A scratch database on PostgreSQL at 127.0.0.1:5432 (or BENCH_ADMIN_DSN) and Redis at
127.0.0.1:6379 (or BENCH_REDIS_URL, with a unique key prefix). One web app (the hub), the relay and
both clients run in this process, so every timestamp is read from the same clock. The code under
test is whatever `hub` imports: run from an export of another commit (PYTHONPATH) for its figures.
Where hub.feed exists, the enqueue cost is measured with the feed and with it switched off.

    .venv/bin/python -m bench.feed [--enqueues 1000] [--events 300] [--burst 1000] [--rate 100] [--pairs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from hub.__main__ import compose_app
from hub.db import create_pool, migrate_dsn
from hub.door import Runner
from hub.outbox import OUTBOX_CHANNEL, enqueue
from hub.settings import Settings
from tests.factories import TestUser, make_order, make_user
from tests.services import _with_database, free_port
from workers.listen import Wakeups
from workers.metrics import WorkerMetrics
from workers.relay import Relay

ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def _stats(values_ms: list[float]) -> str:
    lat = sorted(values_ms)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return f"mean {statistics.fmean(lat):.3f} ms, p50 {statistics.median(lat):.3f} ms, p99 {p99:.3f} ms"


def _event(marker: str, pair: tuple[TestUser, TestUser], order_id: str) -> dict[str, Any]:
    # previousStatus carries the bench's marker: the hub forwards the data as it is.
    return {
        "orderId": order_id,
        "status": "in_progress",
        "escrowState": "held",
        "previousStatus": marker,
        "actorId": pair[0].id,
        "updatedAt": int(time.time() * 1000),
    }


async def _commit(pool: asyncpg.Pool, pair: tuple[TestUser, TestUser], order_id: str, marker: str) -> float:
    """Commit one ORDER_UPDATE for both parties; return perf_counter at the commit."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            await enqueue(conn, "ORDER_UPDATE", _event(marker, pair, order_id), user_ids=[u.id for u in pair])
        return time.perf_counter()


async def enqueue_cost(
    pool: asyncpg.Pool, pair: tuple[TestUser, TestUser], order_id: str, n: int
) -> list[float]:
    """Milliseconds per transaction (acquire, BEGIN, enqueue, COMMIT), one after another."""
    out: list[float] = []
    for i in range(n):
        started = time.perf_counter()
        await _commit(pool, pair, order_id, f"c{i}")
        out.append((time.perf_counter() - started) * 1000)
    return out


class Session:
    """One /ws session; the arrival time of each ORDER_UPDATE by marker."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.arrived: dict[str, float] = {}
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            frame = orjson.loads(msg.data)
            if frame.get("type") == "ORDER_UPDATE":
                self.arrived.setdefault(frame["data"]["previousStatus"], time.perf_counter())
                self.changed.set()

    async def until(self, markers: list[str]) -> None:
        async with asyncio.timeout(120):
            while not all(m in self.arrived for m in markers):
                self.changed.clear()
                await self.changed.wait()


async def _drained(pool: asyncpg.Pool) -> None:
    async with asyncio.timeout(120):
        while await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"):  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def run(enqueues: int, events: int, burst: int, rate: int, pairs: int) -> None:
    database = f"gigwire_bench_feed_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    dsn = _with_database(ADMIN_DSN, database)
    settings = Settings(
        env="dev",
        database_url=dsn,
        redis_url=REDIS_URL,
        redis_prefix=f"gwbench:{uuid.uuid4().hex[:8]}:",
        jwt_secret="gigwire-bench-secret-" + "x" * 40,
        data_dir=Path(tempfile.mkdtemp(prefix="gigwire-bench-")),
        run_workers=False,
        api_rate_per_ip=1_000_000,
        api_rate_per_user=1_000_000,
    )
    try:
        await migrate_dsn(dsn)
        pool = await create_pool(dsn, min_size=4, max_size=14)
        orders: list[tuple[tuple[TestUser, TestUser], str]] = []
        for _ in range(pairs):
            client, doer = await make_user(pool, settings), await make_user(pool, settings)
            orders.append(((client, doer), await make_order(pool, client, doer)))
        pair, order_id = orders[0]
        # The feed's cost per event: the same transaction with and without its inserts.
        await enqueue_cost(pool, pair, order_id, 100)  # warm up
        try:
            feed: Any = importlib.import_module("hub.feed")
        except ImportError:
            feed = None
        if feed is not None:
            kept = feed.FEED_TYPES
            feed.FEED_TYPES = frozenset()
            try:
                print(f"enqueue without feed: {_stats(await enqueue_cost(pool, pair, order_id, enqueues))}")
            finally:
                feed.FEED_TYPES = kept
        label = "with feed" if feed is not None else "(no feed in this code)"
        print(f"enqueue {label}: {_stats(await enqueue_cost(pool, pair, order_id, enqueues))}")
        await _latency(pool, settings, orders, events, burst, rate)
        await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def _latency(
    pool: asyncpg.Pool,
    settings: Settings,
    orders: list[tuple[tuple[TestUser, TestUser], str]],
    events: int,
    burst: int,
    rate: int,
) -> None:
    """ORDER_UPDATE commit -> arrival on one /ws session of each party (hub, relay in process):
    one at a time on the first order, then at a steady rate on the first order only (every event
    bumps the same two feed counters) and spread over every order."""
    assert settings.database_url is not None
    app: web.Application = compose_app(settings, settings.database_url)
    runner = Runner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    metrics = WorkerMetrics()
    relay_broker = app_broker(settings)
    await relay_broker.start()
    wakeups = Wakeups(pool, [OUTBOX_CHANNEL], metrics)
    relay = Relay(pool, relay_broker, metrics)
    stopping = asyncio.Event()
    wakeups.start()
    task = asyncio.create_task(relay.run(wakeups.event(OUTBOX_CHANNEL), stopping))
    http = aiohttp.ClientSession()
    try:
        await _drained(pool)  # the enqueue-cost rows, before any session connects
        url = f"http://127.0.0.1:{port}/ws?token="
        by_order = [[Session(await http.ws_connect(url + u.token)) for u in pair] for pair, _ in orders]
        (pair, order_id), sessions = orders[0], by_order[0]
        await asyncio.wait_for(wakeups.connected.wait(), 10)
        await asyncio.sleep(1)
        committed: dict[str, float] = {}
        for i in range(20):  # warm up
            committed[f"w{i}"] = await _commit(pool, pair, order_id, f"w{i}")
            for s in sessions:
                await s.until([f"w{i}"])
        one = [f"s{i}" for i in range(events)]
        for m in one:
            committed[m] = await _commit(pool, pair, order_id, m)
            for s in sessions:
                await s.until([m])
        _report("ORDER_UPDATE one at a time", one, committed, sessions)
        for spread in (1, len(orders)):
            many = [f"b{spread}-{i}" for i in range(burst)]
            started = time.perf_counter()
            tasks = []
            for n, m in enumerate(many):
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                pair, order_id = orders[n % spread]
                tasks.append(asyncio.create_task(_commit(pool, pair, order_id, m)))
            for m, at in zip(many, await asyncio.gather(*tasks), strict=True):
                committed[m] = at
            lat: list[float] = []
            for n, m in enumerate(many):
                for s in by_order[n % spread]:
                    await s.until([m])
                    lat.append((s.arrived[m] - committed[m]) * 1000)
            label = f"ORDER_UPDATE steady {rate}/s over {spread} order(s): {burst} events"
            print(f"{label}, commit -> delivery {_stats(lat)}")
        for group in by_order:
            for s in group:
                await s.ws.close()
    finally:
        await http.close()
        stopping.set()
        await task
        await wakeups.stop()
        await relay_broker.close()
        await runner.cleanup()


def app_broker(settings: Settings) -> Any:
    from hub.brokers import create_broker

    assert settings.redis_url is not None
    return create_broker(settings.redis_url, settings.redis_prefix, lambda _c, _d: None)


def _report(label: str, markers: list[str], committed: dict[str, float], sessions: list[Session]) -> None:
    lat = [(s.arrived[m] - committed[m]) * 1000 for s in sessions for m in markers]
    print(f"{label}: {len(markers)} events x {len(sessions)} sessions, commit -> delivery {_stats(lat)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--enqueues", type=int, default=1000)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.enqueues, args.events, args.burst, args.rate, args.pairs))


if __name__ == "__main__":
    main()
