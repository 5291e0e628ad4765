"""Issue 13 defect 11: the PostgreSQL pool is sized by settings, waits at most its acquire timeout,
retries a server that refuses connections, and each operation says honestly what failed. The server
refuses for real: a role with CONNECTION LIMIT 1 whose one connection another client holds. Was: a
refusal failed the request at once (REST 500; SUBSCRIBE_CHAT `internal "The server failed; nothing
was stored"`), and a busy pool made a request wait without bound."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp import web

from hub.db import DatabaseUnavailable, create_pool
from hub.settings import Settings, SettingsError
from tests.factories import make_order, make_user
from tests.hub.conftest import Conn, NodeFactory
from tests.services import Services


@pytest.fixture
async def limited_dsn(services: Services) -> AsyncIterator[str]:
    """A DSN of this run's database for a fresh role allowed one connection at a time."""
    role = f"gigwire_limited_{secrets.token_hex(4)}"
    password = secrets.token_hex(8)
    admin = await asyncpg.connect(services.dsn)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1 PASSWORD '{password}'")
        await admin.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        await admin.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        await admin.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
        parts = urlsplit(services.dsn)
        netloc = f"{role}:{password}@{parts.hostname}:{parts.port or 5432}"
        yield urlunsplit(parts._replace(netloc=netloc))
    finally:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role)
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()


async def test_a_refused_connection_is_retried_until_one_is_free(limited_dsn: str) -> None:
    holder = await asyncpg.connect(limited_dsn)
    pool = await create_pool(limited_dsn, min_size=0, max_size=2, acquire_timeout=5.0)
    try:
        with pytest.raises(asyncpg.TooManyConnectionsError):  # the server does refuse
            await asyncpg.connect(limited_dsn)
        started = time.monotonic()
        query = asyncio.create_task(pool.fetchval("SELECT 1"))
        await asyncio.sleep(0.4)
        assert not query.done()  # waiting (retrying), not failed
        await holder.close()
        assert await query == 1
        assert 0.4 <= time.monotonic() - started < 3
    finally:
        await holder.close()
        await pool.close()


async def test_a_refusal_past_the_acquire_timeout_is_database_unavailable(limited_dsn: str) -> None:
    holder = await asyncpg.connect(limited_dsn)
    pool = await create_pool(limited_dsn, min_size=0, max_size=2, acquire_timeout=0.6)
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="refuses"):
            await pool.fetchval("SELECT 1")
        assert 0.3 <= time.monotonic() - started < 2
    finally:
        await holder.close()
        await pool.close()


async def test_a_busy_pool_waits_at_most_the_acquire_timeout(services: Services) -> None:
    pool = await create_pool(services.dsn, min_size=0, max_size=1, acquire_timeout=0.3)
    try:
        async with pool.acquire():
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable, match="no database connection free"):
                await pool.fetchval("SELECT 1")
            assert 0.25 <= time.monotonic() - started < 1.5
        assert await pool.fetchval("SELECT 1") == 1  # and the pool is fine afterwards
    finally:
        await pool.close()


async def _connect_when_free(dsn: str) -> asyncpg.Connection:
    """Connect as soon as the role's one allowed connection is free (a terminated backend takes a
    moment to go)."""
    async with asyncio.timeout(10):
        while True:
            try:
                return await asyncpg.connect(dsn)
            except asyncpg.TooManyConnectionsError:
                await asyncio.sleep(0.05)


def limited(limited_dsn: str) -> dict[str, Any]:
    return {
        "database_url": limited_dsn,
        "database_pool_min": 0,
        "database_pool_max": 2,
        "database_acquire_timeout": 0.5,
    }


async def test_rest_answers_503_with_retry_after_when_the_database_refuses(
    aiohttp_client: Any,
    make_app: Callable[..., web.Application],
    limited_dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await aiohttp_client(make_app(**limited(limited_dsn)))
    holder = await asyncpg.connect(limited_dsn)
    try:
        resp = await client.get("/api/gigs")
        body = await resp.json()
        assert resp.status == 503, body
        assert body["success"] is False and body["error"]["code"] == "unavailable"
        assert resp.headers["Retry-After"] == "1"
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await holder.close()
    resp = await client.get("/api/gigs")
    assert resp.status == 200, await resp.text()


async def test_subscribe_says_it_could_not_subscribe_when_the_database_refuses(
    make_node: NodeFactory, pool: asyncpg.Pool, settings: Settings, limited_dsn: str
) -> None:
    client, doer = await make_user(pool, settings), await make_user(pool, settings)
    order_id = await make_order(pool, client, doer)
    node = await make_node(**limited(limited_dsn))
    conn: Conn = await node.connect(client)  # its authentication left a connection idle in the pool
    # The server drops the role's connections, then the one it allows is taken by someone else.
    role = limited_dsn.split("//", 1)[1].split("@", 1)[0].split(":", 1)[0]
    await pool.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role)
    holder = await _connect_when_free(limited_dsn)
    try:
        frame = await conn.request("SUBSCRIBE_CHAT", {"orderId": order_id})
        assert frame["type"] == "ERROR", frame
        assert frame["data"]["code"] == "internal"
        assert frame["data"]["message"].startswith("Could not subscribe now; retry.")
        assert "nothing was stored" not in frame["data"]["message"]
        frame = await conn.request("CHAT_MESSAGE", {"orderId": order_id, "text": "hi", "clientMsgId": "m1"})
        assert frame["type"] == "ERROR" and "send it again" in frame["data"]["message"], frame
    finally:
        await holder.close()
    ack = await conn.ack("SUBSCRIBE_CHAT", {"orderId": order_id})
    assert ack["orderId"] == order_id


def test_pool_settings_are_read_and_checked() -> None:
    base = {"GIGWIRE_DATA_DIR": "/tmp"}
    s = Settings.from_env(base)
    assert (s.database_pool_min, s.database_pool_max, s.database_acquire_timeout) == (2, 20, 5.0)
    s = Settings.from_env(
        {**base, "DATABASE_POOL_MIN": "0", "DATABASE_POOL_MAX": "5", "DATABASE_ACQUIRE_TIMEOUT": "0.5"}
    )
    assert (s.database_pool_min, s.database_pool_max, s.database_acquire_timeout) == (0, 5, 0.5)
    assert Settings.from_env({**base, "DATABASE_POOL_MAX": "1"}).database_pool_min == 1
    for bad in (
        {"DATABASE_POOL_MIN": "6", "DATABASE_POOL_MAX": "5"},
        {"DATABASE_POOL_MAX": "0"},
        {"DATABASE_ACQUIRE_TIMEOUT": "nan"},
        {"DATABASE_ACQUIRE_TIMEOUT": "0"},
        {"DATABASE_ACQUIRE_TIMEOUT": "soon"},
    ):
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({**base, **bad})
        assert caught.value.variable in bad
