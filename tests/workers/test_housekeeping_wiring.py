"""Housekeeping where the workers run: inside the web process (RUN_WORKERS) as well as in
`python -m workers`, counted on the process's /metrics and stopped with the other loops; and the
worker process's Redis clients, closed when it stops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from redis.asyncio import Redis

import workers.__main__ as workers_main
from hub.settings import Settings
from hub.store import Store, create_store
from hub.store_redis_cluster import DetectingRedisStore
from tests.hub import test_cluster, test_redis_lifecycle
from tests.hub.test_redis_lifecycle import _clients, _settled
from tests.services import RedisServer
from tests.workers.test_housekeeping import HOUR, add_otp, otp_phones
from workers import WORKERS

cluster = test_cluster.cluster  # the 3-primary loopback cluster fixture (its own, for this module)


async def test_the_web_process_with_embedded_workers_sweeps(
    aiohttp_client: Any, make_app: Callable[..., web.Application], pool: asyncpg.Pool
) -> None:
    stale = await add_otp(pool, sent_ago=3 * HOUR)
    fresh = await add_otp(pool, sent_ago=0)
    app = make_app(run_workers=True, timer_sweep_s=3600)
    client = await aiohttp_client(app)
    # The first sweep runs as the workers start; the next would be 10 minutes later.
    async with asyncio.timeout(20):
        while await otp_phones(pool, [stale]):  # noqa: ASYNC110 - another task's work
            await asyncio.sleep(0.05)
    assert await otp_phones(pool, [fresh]) == {fresh}
    registry = app[WORKERS].metrics.registry
    swept = registry.get_sample_value("gigwire_housekeeping_deleted_total", {"table": "otp_codes"})
    assert swept is not None and swept >= 1
    text = await (await client.get("/metrics")).text()
    assert 'gigwire_housekeeping_deleted_total{table="otp_codes"}' in text

    tasks = {t.get_name(): t for t in app[WORKERS]._tasks}
    assert "gigwire-housekeeping" in tasks
    await client.close()  # the app's cleanup stops the workers
    assert tasks["gigwire-housekeeping"].done() and not tasks["gigwire-housekeeping"].cancelled()


# python -m workers closes every Redis client it makes, the Store's own cluster client included.


plain = test_redis_lifecycle.plain  # a private plain Redis (its own, for this module)


async def _run_worker_resources(settings: Settings, url: str, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Open the worker process's resources on `url`, use its Store, and close them. Returns
    whether the Store ran over a cluster client of its own."""
    stores: list[Store] = []

    def recording(client: Redis | None, prefix: str) -> Store:
        store = create_store(client, prefix)
        stores.append(store)
        return store

    monkeypatch.setattr(workers_main, "create_store", recording)
    s = settings.with_(redis_url=url)
    assert s.database_url is not None
    async with workers_main._resources(s, s.database_url):
        (store,) = stores
        for i in range(20):  # keys spread over every primary of a cluster
            await store.set(f"worker-lifecycle:{i}", b"v", 30)
        assert await store.get("worker-lifecycle:0") == b"v"
        assert isinstance(store, DetectingRedisStore)
        return store._cluster is not None


async def test_the_worker_process_closes_its_stores_cluster_client(
    settings: Settings, cluster: list[RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = [server.port for server in cluster]
    before = await _clients(ports)
    assert await _run_worker_resources(settings, cluster[0].url, monkeypatch)
    assert await _settled(ports, before) == before


async def test_the_worker_process_closes_its_redis_clients_on_a_plain_redis(
    settings: Settings, plain: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = await _clients([plain.port])
    assert not await _run_worker_resources(settings, plain.url, monkeypatch)
    assert await _settled([plain.port], before) == before
