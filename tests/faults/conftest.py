"""Fault tests: their own PostgreSQL and Redis (which they stop, freeze and restart), web processes
started as production starts them, and a chat party that behaves as docs/protocol.md tells a
client to (reconnect with backoff, resubscribe with sinceSeq, resend unACKed messages with their
clientMsgId)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from hub.db import migrate_dsn
from hub.settings import Settings
from tests.conftest import TEST_JWT_SECRET
from tests.factories import TestUser, make_order, make_user
from tests.faults.processes import PrivatePostgres
from tests.services import RedisServer


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL of this module's own, started, with a migrated database `gigwire`."""
    pg = PrivatePostgres()
    try:
        pg.start()

        async def prepare() -> None:
            conn = await asyncpg.connect(pg.admin_dsn)
            try:
                await conn.execute("CREATE DATABASE gigwire")
            finally:
                await conn.close()
            await migrate_dsn(pg.dsn("gigwire"))

        asyncio.run(prepare())
        yield pg
    finally:
        pg.cleanup()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                server.proc.send_signal(18)  # SIGCONT: a frozen server must be able to die
        server.cleanup()


@dataclass
class Order:
    client: TestUser
    doer: TestUser
    order_id: str


@pytest.fixture
async def order(private_pg: PrivatePostgres) -> Order:
    """Two users and an in-progress order between them, in the private database."""
    pool = await asyncpg.create_pool(private_pg.dsn("gigwire"), min_size=1, max_size=2)
    try:
        settings = Settings(jwt_secret=TEST_JWT_SECRET)
        client, doer = await make_user(pool, settings), await make_user(pool, settings)
        return Order(client, doer, await make_order(pool, client, doer))
    finally:
        await pool.close()


_refs = itertools.count(1)


@dataclass
class Party:
    """One user of an order on raw /ws, reconnecting as the protocol says a client should. It
    sends numbered messages while `sending`; `acked` maps clientMsgId -> seq, `received` holds the
    other party's clientMsgIds, `closes` the close codes seen (None: the connection was lost)."""

    user: TestUser
    order_id: str
    urls: list[str]
    pending: dict[str, float] = field(default_factory=dict)
    acked: dict[str, int] = field(default_factory=dict)
    received: set[str] = field(default_factory=set)
    seqs: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    closes: list[int | None] = field(default_factory=list)
    joins: int = 0
    live: bool = False
    ws: aiohttp.ClientWebSocketResponse | None = None
    _sent: int = 0

    @property
    def contiguous(self) -> int:
        n = 0
        while n + 1 in self.seqs:
            n += 1
        return n

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, subscribe with sinceSeq, resend, read; again after every close, until `stop`."""
        backoff = 0.1
        async with aiohttp.ClientSession() as http:
            turn = 0
            while not stop.is_set():
                url = self.urls[turn % len(self.urls)]
                try:
                    await self._session(http, url)
                    backoff = 0.1
                except (OSError, aiohttp.ClientError, TimeoutError, ConnectionError):
                    turn += 1  # that process may be gone: the next one
                self.live = False
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(2.0, backoff * 2)

    async def _session(self, http: aiohttp.ClientSession, url: str) -> None:
        ws = await http.ws_connect(f"{url}/ws?token={self.user.token}")
        self.ws = ws
        try:
            await self._send("SUBSCRIBE_CHAT", {"orderId": self.order_id, "sinceSeq": self.contiguous}, "sub")
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                frame = orjson.loads(msg.data)
                await self._on(frame)
        finally:
            self.live = False
            self.closes.append(ws.close_code)
            self.ws = None
            await ws.close()

    async def _on(self, frame: dict[str, Any]) -> None:
        kind, ref, data = frame.get("type"), frame.get("ref"), frame.get("data") or {}
        if kind == "AUTHENTICATED":
            self.joins += 1
        elif kind == "CHAT_MESSAGE":
            self.seqs.add(data["seq"])
            if data["senderId"] != self.user.id:
                self.received.add(data["clientMsgId"])
        elif kind == "ACK" and ref == "sub":
            self.live = True
            for cmid in list(self.pending):  # what was sent and not ACKed: again, same clientMsgId
                await self.chat(cmid)
        elif kind == "ACK" and isinstance(ref, str) and ref.startswith("m:"):
            self.pending.pop(ref[2:], None)
            assert self.acked.setdefault(ref[2:], data["seq"]) == data["seq"], "ACKed with two seqs"
        elif kind == "ERROR":
            self.errors.append(f"{ref}:{data.get('code')}")
            if ref == "sub" and self.ws is not None:
                await self.ws.close()  # not subscribed: reconnect and try again

    async def _send(self, kind: str, data: dict[str, Any], ref: str) -> None:
        if self.ws is None or self.ws.closed:
            raise ConnectionError("not connected")
        await self.ws.send_str(orjson.dumps({"type": kind, "data": data, "ref": ref}).decode())

    async def chat(self, cmid: str | None = None) -> None:
        """Send a new message (or resend `cmid`); kept pending until ACKed."""
        if cmid is None:
            self._sent += 1
            cmid = f"{self.user.id[:8]}-{self._sent}-{uuid.uuid4().hex[:6]}"
        self.pending[cmid] = asyncio.get_running_loop().time()
        with contextlib.suppress(ConnectionError, OSError, aiohttp.ClientError):
            await self._send(
                "CHAT_MESSAGE", {"orderId": self.order_id, "text": cmid, "clientMsgId": cmid}, f"m:{cmid}"
            )

    async def resend_stale(self, older_than: float = 1.0) -> None:
        now = asyncio.get_running_loop().time()
        if self.live:
            for cmid, at in list(self.pending.items()):
                if now - at > older_than:
                    await self.chat(cmid)


@pytest.fixture
async def stop_parties() -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    yield stop
    stop.set()


async def stored(dsn: str, order_id: str) -> list[asyncpg.Record]:
    """Every message of the order: (sender_id, client_msg_id, seq)."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(
            "SELECT sender_id::text, client_msg_id, seq FROM messages WHERE order_id = $1 ORDER BY seq",
            order_id,
        )
    finally:
        await conn.close()
