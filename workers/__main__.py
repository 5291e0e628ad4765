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

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis

from hub import db
from hub.broker import create_broker
from hub.logs import setup_logging
from hub.settings import Settings, SettingsError
from hub.store import create_store
from workers import WorkerSet, log
from workers.housekeeping import Housekeeping


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
async def _resources(settings: Settings, dsn: str) -> AsyncIterator[tuple[WorkerSet, asyncpg.Pool]]:
    pool = await db.create_pool(dsn, min_size=2, max_size=6)
    redis = Redis.from_url(settings.redis_url, health_check_interval=15) if settings.redis_url else None
    # The worker only publishes; deliveries to this process would have nobody to go to.
    broker = create_broker(settings.broker_url, settings.redis_prefix, lambda _c, _d: None)
    await broker.start()
    try:
        yield WorkerSet(pool, broker, create_store(redis, settings.redis_prefix), settings), pool
    finally:
        await broker.close()
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
    async with _resources(settings, settings.database_url) as (workers, pool):
        runner = None
        housekeeping = Housekeeping(
            pool, workers.metrics, idempotency_retention_s=settings.idempotency_retention_s
        )
        sweeping: asyncio.Task[None] | None = None
        try:
            if settings.worker_metrics_port:
                runner = await _metrics_server(workers, settings.host, settings.worker_metrics_port)
            workers.start()
            # Its own loop on the workers' stopping event: a long backlog never delays the timers.
            sweeping = asyncio.create_task(housekeeping.run(workers.stopping), name="gigwire-housekeeping")
            print(
                "gigwire workers running (relay, push, timers, housekeeping); SIGTERM stops them", flush=True
            )
            await stop.wait()
            log.info("stopping workers")
            await workers.stop()
        finally:
            if sweeping is not None:
                workers.stopping.set()  # already set unless we got here by an error
                await _finish(sweeping, grace=10.0)
            if runner is not None:
                await runner.cleanup()


async def _finish(task: asyncio.Task[None], grace: float) -> None:
    """Let `task` end on its own (its stopping event is set) for up to `grace` seconds, then cancel
    it: an unfinished batch rolls back and is deleted by the next sweep."""
    done, _ = await asyncio.wait([task], timeout=grace)
    if not done:
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception as exc:
        log.error("housekeeping loop ended with an error", extra={"error": repr(exc)})


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
