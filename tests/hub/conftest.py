"""Realtime test helpers: WebSocket clients speaking docs/protocol.md over loopback, and nodes (whole
apps under their own test servers) sharing this run's Redis."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.settings import Settings
from tests.factories import TestUser, make_order, make_user

_refs = itertools.count(1)


class Conn:
    """One raw WebSocket connection to /ws; frames are dicts."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.skipped: list[dict[str, Any]] = []

    async def send(self, kind: str, data: dict[str, Any] | None = None, ref: str | None = None) -> None:
        frame: dict[str, Any] = {"type": kind}
        if data is not None:
            frame["data"] = data
        if ref is not None:
            frame["ref"] = ref
        await self.ws.send_str(orjson.dumps(frame).decode())

    async def next(self, within: float = 5.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=within)
        assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        frame: dict[str, Any] = orjson.loads(msg.data)
        return frame

    async def expect(self, kind: str, ref: str | None = None, within: float = 5.0) -> dict[str, Any]:
        """The next frame of type `kind` (and `ref` when given); other frames are kept in `skipped`."""
        async with asyncio.timeout(within):
            while True:
                frame = await self.next(within)
                if frame["type"] == kind and (ref is None or frame.get("ref") == ref):
                    return frame
                self.skipped.append(frame)

    async def request(
        self, kind: str, data: dict[str, Any] | None = None, within: float = 5.0
    ) -> dict[str, Any]:
        """Send with a fresh ref; return the ACK or ERROR answering it (other frames skipped)."""
        ref = f"r{next(_refs)}"
        await self.send(kind, data, ref)
        async with asyncio.timeout(within):
            while True:
                frame = await self.next(within)
                if frame.get("ref") == ref:
                    return frame
                self.skipped.append(frame)

    async def ack(self, kind: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """Like `request`, asserting an ACK; returns its data."""
        frame = await self.request(kind, data)
        assert frame["type"] == "ACK", frame
        result: dict[str, Any] = frame["data"]
        return result

    async def closed(self, within: float = 5.0) -> int | None:
        """Read until the server closes; return the close code."""
        async with asyncio.timeout(within):
            while True:
                msg = await self.ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    return self.ws.close_code
                if msg.type is aiohttp.WSMsgType.ERROR:
                    return self.ws.close_code
                self.skipped.append(orjson.loads(msg.data))

    async def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Frames received within `seconds` (for asserting nothing more arrives)."""
        got: list[dict[str, Any]] = []
        try:
            while True:
                got.append(await self.next(seconds))
        except TimeoutError:
            return got


@dataclass
class Node:
    """One whole web app under its own test server."""

    app: web.Application
    client: TestClient[Any, Any]

    async def connect(self, user: TestUser, subscribe: str | None = None) -> Conn:
        """An authenticated connection (token in the query), optionally subscribed to an order."""
        ws = await self.client.ws_connect(f"/ws?token={user.token}")
        conn = Conn(ws)
        hello = await conn.expect("AUTHENTICATED")
        assert hello["data"]["userId"] == user.id
        if subscribe is not None:
            await conn.ack("SUBSCRIBE_CHAT", {"orderId": subscribe})
        return conn

    async def raw(self, query: str = "") -> Conn:
        return Conn(await self.client.ws_connect("/ws" + query))


NodeFactory = Callable[..., Awaitable[Node]]


@pytest.fixture
async def make_node(aiohttp_client: Any, make_app: Callable[..., web.Application]) -> NodeFactory:
    """Start a node; keyword arguments override settings. Nodes of one test share Redis."""

    async def build(**overrides: Any) -> Node:
        app = make_app(**overrides)
        client = await aiohttp_client(app)
        return Node(app, client)

    return build


@pytest.fixture
async def node(make_node: NodeFactory) -> Node:
    return await make_node()


@dataclass
class Pair:
    client: TestUser
    doer: TestUser
    order_id: str


@pytest.fixture
async def pair(pool: asyncpg.Pool, settings: Settings) -> Pair:
    """Two users and an order between them."""
    client = await make_user(pool, settings)
    doer = await make_user(pool, settings)
    return Pair(client, doer, await make_order(pool, client, doer))
