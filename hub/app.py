"""The web process's core application: state, health, request ids. Transports and REST plug in."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis

from hub import db
from hub.asyncapi import asyncapi_json
from hub.broker import Broker, Deliver
from hub.brokers import create_broker
from hub.keys import BROKER, POOL, REDIS, SETTINGS, STORE, TOKENS
from hub.logs import client_peer, install_client_fault_filter, request_id
from hub.settings import Settings
from hub.store import close_store, create_store
from hub.tokens import TokenCodec

log = logging.getLogger("gigwire.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REDIS_MAX_CONNECTIONS = 100
"""Pool size of the shared client: redis-py's default for a client made from a URL."""
REDIS_WAIT_S = 5.0
"""How long a command waits for a free pooled connection before failing."""

DELIVER: web.AppKey[list[Deliver]] = web.AppKey("deliver")
"""Callbacks the broker hands every received message to; the hub registers its own here."""


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id (the caller's X-Request-Id when sane), log it as one JSON line."""
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
    token = request_id.set(rid)
    peer = client_peer.set(request.remote)  # for the per-peer rate limit of client-fault lines
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers["X-Request-Id"] = rid
        return response
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-Id"] = rid
        raise
    finally:
        if request.path not in ("/healthz", "/metrics"):
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
        request_id.reset(token)
        client_peer.reset(peer)


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: the database and the broker answer within 2 s each, else 503 naming what failed."""
    app = request.app
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            await app[POOL].fetchval("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        async with asyncio.timeout(2):
            await app[BROKER].ping()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"unreachable: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return web.json_response({"status": "ok" if ok else "unavailable", **checks}, status=200 if ok else 503)


def create_redis(
    url: str, *, max_connections: int = REDIS_MAX_CONNECTIONS, wait_s: float = REDIS_WAIT_S
) -> Redis:
    """The process's shared client on `url`: a pool of up to `max_connections` connections (a
    `max_connections` query parameter of the URL wins). With all of them busy a command waits for
    one up to `wait_s` seconds, then raises redis' ConnectionError("No connection available.")."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=wait_s, health_check_interval=15
    )
    return Redis.from_pool(pool)


def build_core_app(settings: Settings, dsn: str) -> web.Application:
    """The application with its state contexts (pool, Redis, store, broker) and health routes.
    Contexts start in order and stop in reverse; nothing connects before the app starts."""
    install_client_fault_filter()  # a client's bad input logs one warning line, not an ERROR
    app = web.Application(middlewares=[request_context], client_max_size=1024 * 1024)
    app[SETTINGS] = settings
    app[TOKENS] = TokenCodec(settings)
    app[DELIVER] = []

    async def database(app: web.Application) -> AsyncIterator[None]:
        pool = await db.create_pool(
            dsn,
            min_size=settings.database_pool_min,
            max_size=settings.database_pool_max,
            acquire_timeout=settings.database_acquire_timeout,
        )
        app[POOL] = pool
        yield
        await pool.close()

    async def redis_state(app: web.Application) -> AsyncIterator[None]:
        client: Redis | None = None
        if settings.redis_url is not None:
            client = create_redis(settings.redis_url)
        store = create_store(client, settings.redis_prefix)
        app[REDIS] = client
        app[STORE] = store
        yield
        await close_store(store)  # a cluster client of its own, made when REDIS_URL names a cluster
        if client is not None:
            await client.aclose()

    async def broker(app: web.Application) -> AsyncIterator[None]:
        handlers = app[DELIVER]

        def deliver(channel: str, data: bytes) -> None:
            for handler in handlers:
                handler(channel, data)

        instance: Broker = create_broker(settings.broker_url, settings.redis_prefix, deliver)
        await instance.start()
        app[BROKER] = instance
        yield
        await instance.close()

    app.cleanup_ctx.extend([database, redis_state, broker])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/asyncapi.json", asyncapi_json)  # the realtime protocol (hub/asyncapi.py)
    return app
