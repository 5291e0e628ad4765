"""Redis restarted while clients chat on two nodes: nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from hub.metrics import METRICS
from tests.hub.conftest import NodeFactory, Pair
from tests.services import RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


async def wait_for(check: Callable[[], bool], within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 -- polling a metric of another component
            await asyncio.sleep(0.05)


async def test_redis_restart_resubscribes_and_loses_nothing_acked(
    make_node: NodeFactory, pair: Pair, redis_server: RedisServer
) -> None:
    fast = {"chat_rate_per_s": 10_000.0, "chat_burst": 10_000, "redis_url": redis_server.url}
    a_node, b_node = await make_node(**fast), await make_node(**fast)
    a = await a_node.connect(pair.client, subscribe=pair.order_id)
    b = await b_node.connect(pair.doer, subscribe=pair.order_id)
    acked: list[int] = []
    for i in range(5):
        acked.append((await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": f"before {i}"}))["seq"])
    seen_by_b = {(await b.expect("CHAT_MESSAGE"))["data"]["seq"] for _ in range(5)}
    assert seen_by_b == {1, 2, 3, 4, 5}

    redis_server.stop()
    for i in range(5):  # stored and acknowledged while Redis is down
        acked.append((await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": f"during {i}"}))["seq"])
    assert acked == list(range(1, 11))
    redis_server.start()

    reconnects = [n.app[METRICS].broker_reconnects for n in (a_node, b_node)]
    await wait_for(lambda: all(c._value.get() >= 1 for c in reconnects))
    # Live delivery resumes across nodes.
    acked.append((await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "after"}))["seq"])
    live = []
    async with asyncio.timeout(10):
        while 11 not in live:
            live.append((await b.expect("CHAT_MESSAGE"))["data"]["seq"])
    # The hub caught the live session up from PostgreSQL after the reconnect, in order.
    assert live == list(range(6, 12))
    # A client that reconnects with sinceSeq gets everything it missed.
    b2 = await b_node.connect(pair.doer)
    ack = await b2.ack("SUBSCRIBE_CHAT", {"orderId": pair.order_id, "sinceSeq": 5})
    assert ack["replayed"] == 6 and ack["lastSeq"] == 11
    assert [f["data"]["seq"] for f in b2.skipped if f["type"] == "CHAT_MESSAGE"] == list(range(6, 12))
