"""Fixtures of the Python SDK tests: a real gigwire of separate processes (two `python -m hub` on
this run's Redis and database, one `python -m workers` whose relay publishes the outbox), users
logged in through its REST API (the code read from the hub's log, as in dev mode), and a TCP proxy
in front of the hubs that can cut every connection at once and be pointed at another hub."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.factories import TestUser, make_order
from tests.services import Services, free_port
from tests.sessions.conftest import Cluster, Login, Proc, _env, _settle_outbox, _start, _wait_healthy, login

__all__ = ["Cluster", "Login", "Proxy", "login"]


class Proxy:
    """A loopback TCP proxy to one hub's port at a time. `cut()` drops every open connection at once
    (both sockets, no WebSocket close: as a network loss); `target` may be changed at any time and
    applies to the next connections."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepted = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._pairs.discard(pair)
            writer.transport.abort()
            up_writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    def cut(self) -> int:
        """Abort every proxied connection; returns how many there were."""
        pairs = list(self._pairs)
        for down, up in pairs:
            down.transport.abort()
            up.transport.abort()
        return len(pairs)

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@dataclass
class Gigwire:
    """The cluster's processes and what tests need from them."""

    cluster: Cluster
    dsn: str
    http: aiohttp.ClientSession
    proxies: list[Proxy] = field(default_factory=list)

    @property
    def hubs(self) -> list[Proc]:
        return self.cluster.hubs

    def port(self, i: int) -> int:
        return int(self.hubs[i].url.rsplit(":", 1)[1])

    async def proxy(self, hub: int) -> Proxy:
        proxy = Proxy(self.port(hub))
        await proxy.start()
        self.proxies.append(proxy)
        return proxy

    async def login(self) -> Login:
        return await login(self.http, self.cluster)

    def kill(self, i: int) -> None:
        """SIGKILL hub `i` (no close frames, no cleanup: its sessions vanish)."""
        self.hubs[i].proc.send_signal(signal.SIGKILL)
        self.hubs[i].proc.wait(10)


def _stop(procs: list[Proc]) -> None:
    for p in procs:
        if p.proc.poll() is None:
            p.proc.terminate()
    for p in procs:
        try:
            p.proc.wait(timeout=15)
        except Exception:
            p.proc.kill()
            p.proc.wait()


@pytest.fixture
def cluster_env() -> dict[str, str]:
    """Extra environment of the cluster's processes (a test module may override it)."""
    return {}


@pytest.fixture
def sdk_cluster(services: Services, tmp_path: Path, cluster_env: dict[str, str]) -> Iterator[Cluster]:
    """Two hubs and a worker process (the relay), for one test (a test may kill a hub)."""
    _settle_outbox(services.dsn)
    hubs: list[Proc] = []
    for name in ("hub-a", "hub-b"):
        port = free_port()
        env = _env(services, tmp_path / name, HOST="127.0.0.1", PORT=str(port), **cluster_env)
        hub = _start(name, "hub", env, tmp_path)
        hub.url = f"http://127.0.0.1:{port}"
        hubs.append(hub)
    worker = _start("workers", "workers", _env(services, tmp_path / "workers", **cluster_env), tmp_path)
    try:
        for hub in hubs:
            _wait_healthy(hub)
        yield Cluster(hubs, worker)
    finally:
        _stop([*hubs, worker])


@pytest.fixture
async def gigwire(sdk_cluster: Cluster, services: Services) -> AsyncIterator[Gigwire]:
    http = aiohttp.ClientSession()
    gw = Gigwire(sdk_cluster, services.dsn, http)
    try:
        yield gw
    finally:
        for proxy in gw.proxies:
            await proxy.close()
        await http.close()


@dataclass
class Parties:
    """A client and a doer logged in through REST, and an order between them."""

    client: Login
    doer: Login
    order_id: str


@pytest.fixture
async def parties(gigwire: Gigwire, pool: asyncpg.Pool) -> Parties:
    client, doer = await gigwire.login(), await gigwire.login()
    # Profiles complete enough for order actions; the order is arranged by SQL (no money moves).
    for user in (client, doer):
        await pool.execute(
            "UPDATE users SET name = 'SDK User', roles = '{doer,client}' WHERE id = $1", user.user_id
        )
    order_id = await make_order(pool, _as_test_user(client), _as_test_user(doer))
    return Parties(client, doer, order_id)


def _as_test_user(login: Login) -> TestUser:
    return TestUser(login.user_id, login.phone, login.token)
