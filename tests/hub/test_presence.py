"""Presence through the Store: online users and the orders they watch live, on any node."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

from hub.keys import STORE
from hub.presence import Presence, is_online, is_watching, watched_orders
from hub.store import Store
from hub.store_memory import MemoryStore
from tests.hub.conftest import NodeFactory, Pair
from tests.hub.test_ws_wire import Raw


async def test_presence_across_nodes(make_node: NodeFactory, pair: Pair) -> None:
    a_node, b_node = await make_node(), await make_node()
    store = b_node.app[STORE]  # read from the other node: presence is shared through Redis
    assert not await is_online(store, pair.client.id)
    conn = await a_node.connect(pair.client)
    assert await is_online(store, pair.client.id)
    assert await watched_orders(store, pair.client.id) == set()
    await conn.ack("SUBSCRIBE_CHAT", {"orderId": pair.order_id})
    assert await is_watching(store, pair.client.id, pair.order_id)
    await conn.ack("UNSUBSCRIBE_CHAT", {"orderId": pair.order_id})
    assert not await is_watching(store, pair.client.id, pair.order_id)
    await conn.ack("SUBSCRIBE_CHAT", {"orderId": pair.order_id})
    await conn.ws.close()
    async with asyncio.timeout(5):
        while await is_online(store, pair.client.id):  # noqa: ASYNC110 -- the server notices the close
            await asyncio.sleep(0.02)
    assert await watched_orders(store, pair.client.id) == set()


async def test_presence_expires_without_refresh() -> None:
    store = MemoryStore()
    presence = Presence(store, ttl_s=0.2)
    await presence.announce("u1", "s1", ["o1"])
    assert await is_online(store, "u1") and await is_watching(store, "u1", "o1")
    await asyncio.sleep(0.3)  # a crashed process refreshes nothing
    assert not await is_online(store, "u1") and await watched_orders(store, "u1") == set()


class _CountingStore:
    """A Store that counts (and may fail) presence writes, each taking a moment like a round trip."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.writes = 0
        self.fail = False

    async def members_touch(self, entries: dict[str, list[str]], ttl_s: float) -> None:
        self.writes += 1
        await asyncio.sleep(0.01)
        if self.fail:
            raise ConnectionError("store down")
        await self.store.members_touch(entries, ttl_s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_concurrent_announces_share_writes(make_node: NodeFactory) -> None:
    store = (await make_node()).app[STORE]
    counting = _CountingStore(store)
    presence = Presence(cast(Store, counting), ttl_s=30)
    users = [f"u-{uuid.uuid4().hex}" for _ in range(200)]
    await asyncio.gather(*(presence.announce(user, f"s-{user}", ["o1"]) for user in users))
    assert counting.writes <= 3  # the first alone, the other 199 joined the next write
    for user in users:
        assert await is_online(store, user) and await is_watching(store, user, "o1")
    await presence.announce(users[0], "another-session")  # a later announce after the burst
    assert counting.writes <= 4


async def test_a_failing_presence_write_fails_no_connection(make_node: NodeFactory) -> None:
    store = (await make_node()).app[STORE]
    counting = _CountingStore(store)
    counting.fail = True
    presence = Presence(cast(Store, counting), ttl_s=30)
    async with asyncio.timeout(5):
        await asyncio.gather(*(presence.announce(f"down-{i}", "s") for i in range(50)))
    assert not await is_online(store, "down-0")


async def test_sessions_lost_at_shutdown_withdraw_presence_before_the_process_stops(
    make_node: NodeFactory, pair: Pair
) -> None:
    going, staying = await make_node(), await make_node()
    store = going.app[STORE]
    slow_remove = store.members_remove

    async def members_remove(key: str, members: list[str]) -> None:
        await asyncio.sleep(0.3)  # a slow Redis: the withdrawal is still running when cleanup starts
        await slow_remove(key, members)

    store.members_remove = members_remove  # type: ignore[method-assign]
    raw = await Raw.session(going, pair.client.token)
    assert await is_online(staying.app[STORE], pair.client.id)
    raw.abort()
    await asyncio.sleep(0.05)  # the server notices the loss and starts removing the session
    await going.client.close()  # shutdown and cleanup of the whole app
    assert not await is_online(staying.app[STORE], pair.client.id)
