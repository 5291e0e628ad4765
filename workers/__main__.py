"""The worker process: `python -m workers` runs the outbox relay, the push sender, the order
timers and housekeeping until SIGTERM or SIGINT, then lets the batches in hand finish and exits 0.

It needs DATABASE_URL (the embedded PostgreSQL belongs to the web process) and, to reach the web
processes' sessions, the same REDIS_URL and REDIS_PREFIX as they have."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis

from hub import db, gc_tune
from hub.brokers import create_broker
from hub.logs import setup_logging
from hub.settings import Settings, SettingsError
from hub.store import close_store, create_store
from workers import WorkerSet, log


async def _metrics_server(workers: WorkerSet, host: str, port: int) -> web.AppRunner:
    """/metrics (the workers' registry) and /healthz on `port`."""

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(workers.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


@contextlib.asynccontextmanager
async def _resources(settings: Settings, dsn: str) -> AsyncIterator[WorkerSet]:
    # The loops need few connections: at most 6, fewer when DATABASE_POOL_MAX says so.
    size = min(settings.database_pool_max, 6)
    pool = await db.create_pool(
        dsn,
        min_size=min(settings.database_pool_min, size),
        max_size=size,
        acquire_timeout=settings.database_acquire_timeout,
    )
    redis = Redis.from_url(settings.redis_url, health_check_interval=15) if settings.redis_url else None
    # The worker only publishes; deliveries to this process would have nobody to go to.
    broker = create_broker(settings.broker_url, settings.redis_prefix, lambda _c, _d: None)
    await broker.start()
    store = create_store(redis, settings.redis_prefix)
    try:
        yield WorkerSet(pool, broker, store, settings)
    finally:
        await broker.close()
        # The store first: on a Redis Cluster it made a cluster client of its own from `redis`.
        await close_store(store)
        if redis is not None:
            await redis.aclose()
        await pool.close()


async def run(settings: Settings) -> None:
    """Run the workers until SIGTERM/SIGINT."""
    assert settings.database_url is not None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with _resources(settings, settings.database_url) as workers:
        runner = None
        try:
            if settings.worker_metrics_port:
                runner = await _metrics_server(workers, settings.host, settings.worker_metrics_port)
            workers.start()
            # As the web process does (hub/realtime.py): pauses timed on /metrics, the collector
            # settled, a young collection and a heap trim every 60 s.
            async with gc_tune.tended(gc_tune.PauseMeter(workers.metrics.registry)):
                gc_tune.settle(settings.gc_threshold)
                print(
                    "gigwire workers running (relay, push, timers, housekeeping); SIGTERM stops them",
                    flush=True,
                )
                await stop.wait()
                log.info("stopping workers")
            await workers.stop()
        finally:
            if runner is not None:
                await runner.cleanup()


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"gigwire workers: bad configuration: {exc}", file=sys.stderr)
        return 2
    if settings.database_url is None:
        print(
            "gigwire workers: DATABASE_URL is required (without it, `python -m hub` runs the workers itself)",
            file=sys.stderr,
        )
        return 2
    setup_logging(settings.log_level)
    asyncio.run(run(settings))
    print("gigwire workers stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
