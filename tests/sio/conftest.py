"""Socket.IO test helpers: python-socketio AsyncClient connections to a node's /socket.io/, and the
hub tests' nodes and order pairs (re-exported fixtures)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import socketio

from tests.factories import TestUser
from tests.hub.conftest import Node, Pair, make_node, node, pair

__all__ = ["Node", "Pair", "SioConn", "eventually", "make_node", "node", "pair", "sio_connect"]


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until `check()` holds; fail after `within` seconds."""
    for _ in range(int(within / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    assert check(), "the condition did not hold in time"


class SioConn:
    """One python-socketio client; every server event lands in `events` as (name, data)."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.skipped: list[tuple[str, Any]] = []
        self.connect_error: Any = None
        self.disconnected = asyncio.Event()

        async def any_event(event: str, data: Any = None) -> None:
            await self.events.put((event, data))

        async def connect_error(data: Any = None) -> None:
            self.connect_error = data

        async def disconnect(*_args: Any) -> None:
            self.disconnected.set()

        self.client.on("*", any_event)
        self.client.on("connect_error", connect_error)
        self.client.on("disconnect", disconnect)

    async def call(self, event: str, data: Any = None, within: float = 5.0) -> Any:
        """Emit with an ack callback; return what the server acknowledged."""
        if data is None:
            return await self.client.call(event, timeout=within)
        return await self.client.call(event, data, timeout=within)

    async def expect(self, event: str, within: float = 5.0) -> Any:
        """The data of the next `event`; other events are kept in `skipped`."""
        async with asyncio.timeout(within):
            while True:
                name, data = await self.events.get()
                if name == event:
                    return data
                self.skipped.append((name, data))

    async def quiet(self, seconds: float = 0.3) -> list[tuple[str, Any]]:
        """Events received within `seconds` (for asserting nothing more arrives)."""
        got: list[tuple[str, Any]] = []
        try:
            async with asyncio.timeout(seconds):
                while True:
                    got.append(await self.events.get())
        except TimeoutError:
            return got

    async def close(self) -> None:
        await self.client.disconnect()


async def sio_connect(
    node: Node, user: TestUser | None = None, subscribe: str | None = None, transport: str = "websocket"
) -> SioConn:
    """A connection to `node`'s /socket.io/, authenticated in the handshake when `user` is given."""
    conn = SioConn()
    url = str(node.client.make_url("")).rstrip("/")
    auth = {"token": user.token} if user is not None else None
    await conn.client.connect(url, auth=auth, transports=[transport], wait_timeout=5)
    if user is not None:
        hello = await conn.expect("AUTHENTICATED")
        assert hello["userId"] == user.id
    if subscribe is not None:
        ack = await conn.call("SUBSCRIBE_CHAT", {"orderId": subscribe})
        assert "error" not in ack, ack
    return conn
