"""Presence through the Store: online users and the orders they watch live, on any node."""

from __future__ import annotations

import asyncio

from hub.keys import STORE
from hub.presence import Presence, is_online, is_watching, watched_orders
from hub.store_memory import MemoryStore
from tests.hub.conftest import NodeFactory, Pair


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
