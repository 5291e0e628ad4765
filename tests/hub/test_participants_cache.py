"""The process's cache of order participants: bounded, and never a way around the check."""

from __future__ import annotations

import asyncpg

from hub.hub import Bounded
from hub.keys import HUB
from hub.settings import Settings
from tests.factories import make_user
from tests.hub.conftest import Node, Pair


def test_bounded_drops_the_oldest_past_its_size() -> None:
    cache: Bounded[int, str] = Bounded(8)
    for i in range(20):
        cache.put(i, f"v{i}")
        assert len(cache._items) <= 8
    assert cache.get(19) == "v19" and cache.get(0) is None
    cache.put(19, "again")  # replacing an entry evicts nothing
    assert cache.get(18) == "v18" and cache.get(19) == "again"


async def test_a_cached_order_still_refuses_outsiders(
    node: Node, pair: Pair, pool: asyncpg.Pool, settings: Settings
) -> None:
    client = await node.connect(pair.client, subscribe=pair.order_id)
    cached = node.app[HUB].participants.get(pair.order_id)
    assert cached is not None and pair.client.id in cached and pair.doer.id in cached
    outsider = await node.connect(await make_user(pool, settings))
    err = await outsider.request("SUBSCRIBE_CHAT", {"orderId": pair.order_id})
    assert err["type"] == "ERROR" and err["data"]["code"] == "forbidden"
    err = await outsider.request("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "let me in"})
    assert err["type"] == "ERROR" and err["data"]["code"] == "forbidden"
    doer = await node.connect(pair.doer, subscribe=pair.order_id)  # allowed from the cache
    await client.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "hi"})
    assert (await doer.expect("CHAT_MESSAGE"))["data"]["text"] == "hi"
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE order_id = $1", pair.order_id) == 1
