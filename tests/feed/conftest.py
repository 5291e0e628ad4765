"""Feed test helpers: events committed through hub.outbox.enqueue (typed Structs, as the domain
does), a relay publishing them, and readers that collect every frame a /ws or Socket.IO session
gets (the hub tests' nodes and order pairs are re-exported)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import aiohttp
import asyncpg
import orjson
import pytest

from hub.brokers import create_broker
from hub.clock import now_ms
from hub.events import Notification, OrderUpdate
from hub.outbox import enqueue
from hub.settings import Settings
from tests.hub.conftest import Conn, Node, Pair, make_node, node, pair
from tests.services import RedisServer, Services, free_port
from tests.sio.conftest import SioConn
from workers.metrics import WorkerMetrics
from workers.relay import Relay

__all__ = ["Node", "Pair", "make_node", "node", "pair"]

FEED_TYPES = ("ORDER_UPDATE", "NEW_APPLICATION", "NOTIFICATION")
ROOT = Path(__file__).resolve().parents[2]
_counter = itertools.count(1)


class Endpoint(Protocol):
    """A hub to connect sessions to: a test Node or a HubProcess."""

    @property
    def base_url(self) -> str: ...

    async def ws_connect(self, path: str) -> aiohttp.ClientWebSocketResponse: ...


class NodeEndpoint:
    """A test Node (a whole app in this process) as an Endpoint."""

    def __init__(self, node: Node) -> None:
        self.node = node

    @property
    def base_url(self) -> str:
        return str(self.node.client.make_url("")).rstrip("/")

    async def ws_connect(self, path: str) -> aiohttp.ClientWebSocketResponse:
        ws: aiohttp.ClientWebSocketResponse = await self.node.client.ws_connect(path)
        return ws


@dataclass
class HubProcess:
    """`python -m hub` (the web process, workers off) on a loopback port."""

    proc: asyncio.subprocess.Process
    port: int
    http: aiohttp.ClientSession

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def ws_connect(self, path: str) -> aiohttp.ClientWebSocketResponse:
        return await self.http.ws_connect(self.base_url + path)

    async def metric(self, name: str) -> float:
        """The value of one unlabelled sample of the process's /metrics (0 when absent)."""
        async with self.http.get(self.base_url + "/metrics") as resp:
            text = await resp.text()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0


@pytest.fixture
async def hub_processes(
    services: Services, settings: Settings, redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[list[HubProcess]]:
    """Two web processes on this run's database and the private Redis (this run's key prefix)."""
    procs: list[HubProcess] = []
    http = aiohttp.ClientSession()
    try:
        for name in ("a", "b"):
            port = free_port()
            env = {
                **os.environ,
                "DATABASE_URL": services.dsn,
                "REDIS_URL": redis_server.url,
                "REDIS_PREFIX": settings.redis_prefix,
                "JWT_SECRET": settings.jwt_secret,
                "GIGWIRE_ENV": "dev",
                "GIGWIRE_DATA_DIR": str(tmp_path / name),
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "RUN_WORKERS": "false",
                "LOG_LEVEL": "WARNING",
            }
            log = (tmp_path / f"hub-{name}.log").open("wb")
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hub", cwd=ROOT, env=env, stdout=log, stderr=log
            )
            procs.append(HubProcess(proc, port, http))
        for hub in procs:
            async with asyncio.timeout(30):
                while True:
                    try:
                        async with http.get(hub.base_url + "/healthz") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)
        yield procs
    finally:
        for hub in procs:
            if hub.proc.returncode is None:
                hub.proc.terminate()
                await asyncio.wait_for(hub.proc.wait(), 15)
        await http.close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private Redis the test may kill -9 and start again."""
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


async def order_update(pool: asyncpg.Pool, pair: Pair) -> None:
    """Commit one ORDER_UPDATE for both parties (one outbox row, each user's next feedSeq)."""
    n = next(_counter)
    event = OrderUpdate(pair.order_id, "in_progress", "held", f"step-{n}", pair.client.id, now_ms())
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(
            cast(asyncpg.Connection, conn), "ORDER_UPDATE", event, user_ids=[pair.client.id, pair.doer.id]
        )


async def notification(pool: asyncpg.Pool, user_id: str) -> None:
    """Commit one NOTIFICATION for `user_id`."""
    n = next(_counter)
    event = Notification(str(uuid.uuid4()), "system", f"Notice {n}", "body", {"n": n}, now_ms())
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(cast(asyncpg.Connection, conn), "NOTIFICATION", event, user_ids=[user_id])


@contextlib.asynccontextmanager
async def relay(pool: asyncpg.Pool, redis_url: str, settings: Settings) -> AsyncIterator[Relay]:
    """A relay running in the background on `redis_url` (the nodes' key prefix), polling often."""
    broker = create_broker(redis_url, settings.redis_prefix, lambda _c, _d: None)
    await broker.start()
    worker = Relay(pool, broker, WorkerMetrics(), poll_interval=0.05)
    stopping = asyncio.Event()
    task = asyncio.create_task(worker.run(asyncio.Event(), stopping))
    try:
        yield worker
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)
        await broker.close()


class Reader:
    """Every event one session gets, as (type, data), read in the background."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.task: asyncio.Task[None] | None = None

    def feed_seqs(self) -> list[int]:
        return [int(d["feedSeq"]) for t, d in self.events if t in FEED_TYPES]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [d for t, d in self.events if t == kind]

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


class WsReader(Reader):
    """A raw /ws session's events; `closed` is set if the server ends the connection."""

    def __init__(self, name: str, conn: Conn) -> None:
        super().__init__(name)
        self.conn = conn
        self.closed = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            msg = await self.conn.ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                self.closed.set()
                return
            frame = orjson.loads(msg.data)
            self.events.append((frame["type"], frame.get("data") or {}))


class SioReader(Reader):
    """A Socket.IO session's events; its `disconnected` is set if the connection ends."""

    def __init__(self, name: str, conn: SioConn) -> None:
        super().__init__(name)
        self.conn = conn
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            event, data = await self.conn.events.get()
            self.events.append((event, data or {}))


def _endpoint(where: Node | Endpoint) -> Endpoint:
    return NodeEndpoint(where) if isinstance(where, Node) else where


async def ws_session(where: Node | Endpoint, token: str, since: int | None = None) -> WsReader:
    """A /ws session authenticated in the query, resuming after `since` when given."""
    query = f"/ws?token={token}" + (f"&sinceFeedSeq={since}" if since is not None else "")
    return WsReader("ws", Conn(await _endpoint(where).ws_connect(query)))


async def sio_session(where: Node | Endpoint, token: str, since: int | None = None) -> SioReader:
    """A Socket.IO session authenticated in the handshake (`auth: {token, sinceFeedSeq}`)."""
    conn = SioConn()
    url = _endpoint(where).base_url
    auth: dict[str, Any] = {"token": token}
    if since is not None:
        auth["sinceFeedSeq"] = since
    await conn.client.connect(url, auth=auth, transports=["websocket"], wait_timeout=5)
    return SioReader("sio", conn)


async def until(check: Any, within: float = 30.0) -> None:
    """Wait until `check()` holds; fail after `within` seconds."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 -- polling readers filled by other tasks
            await asyncio.sleep(0.05)


async def feed_rows(pool: asyncpg.Pool, user_id: str) -> list[tuple[int, str]]:
    """(seq, type) of the user's stored feed, in order."""
    rows = await pool.fetch("SELECT seq, type FROM feed WHERE user_id = $1 ORDER BY seq", user_id)
    return [(int(r["seq"]), r["type"]) for r in rows]
