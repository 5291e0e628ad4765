"""Two whole apps sharing one Redis: cross-node chat order, the user feed, concurrent senders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from hub.broker import Broker
from hub.brokers import create_broker
from hub.publish import publish_event
from hub.settings import Settings
from tests.hub.conftest import Conn, NodeFactory, Pair

FAST = {"chat_rate_per_s": 10_000.0, "chat_burst": 10_000}


@pytest.fixture
async def outside(settings: Settings) -> AsyncIterator[Broker]:
    """A broker of another process (a worker), publishing into the same Redis."""
    broker = create_broker(settings.broker_url, settings.redis_prefix, lambda channel, data: None)
    await broker.start()
    yield broker
    await broker.close()


async def collect(conn: Conn, count: int, within: float = 10.0) -> list[int]:
    seqs = [f["data"]["seq"] for f in conn.skipped if f["type"] == "CHAT_MESSAGE"]
    conn.skipped.clear()
    async with asyncio.timeout(within):
        while len(seqs) < count:
            seqs.append((await conn.expect("CHAT_MESSAGE"))["data"]["seq"])
    return seqs


async def test_message_sent_on_one_node_arrives_on_the_other_in_order(
    make_node: NodeFactory, pair: Pair
) -> None:
    a_node, b_node = await make_node(**FAST), await make_node(**FAST)
    a = await a_node.connect(pair.client, subscribe=pair.order_id)
    b = await b_node.connect(pair.doer, subscribe=pair.order_id)
    for i in range(30):
        await a.send("CHAT_MESSAGE", {"orderId": pair.order_id, "text": f"m{i}"})
    assert await collect(b, 30) == list(range(1, 31))
    assert await collect(a, 30) == list(range(1, 31))  # the sender's own session too


async def test_order_update_from_outside_reaches_every_session_of_the_user(
    make_node: NodeFactory, pair: Pair, outside: Broker
) -> None:
    a_node, b_node = await make_node(), await make_node()
    sessions = [
        await a_node.connect(pair.client),
        await a_node.connect(pair.client),
        await b_node.connect(pair.client),
    ]
    other = await b_node.connect(pair.doer)
    watcher = await b_node.connect(pair.doer, subscribe=pair.order_id)
    update = {
        "orderId": pair.order_id,
        "status": "submitted",
        "escrowState": "funded",
        "previousStatus": "in_progress",
        "actorId": pair.doer.id,
        "updatedAt": 1_700_000_000_000,
    }
    await publish_event(outside, f"user:{pair.client.id}", "ORDER_UPDATE", update)
    for conn in sessions:
        got = await conn.expect("ORDER_UPDATE")
        assert got == {"type": "ORDER_UPDATE", "data": update}
    assert await other.quiet(0.3) == []
    # Server events to the order's channel reach its chat subscribers.
    await publish_event(outside, f"order:{pair.order_id}", "ORDER_UPDATE", update)
    assert (await watcher.expect("ORDER_UPDATE"))["data"] == update
    for kind, data in [
        ("NEW_APPLICATION", {"gigId": "g", "applicationId": "a", "doerId": pair.doer.id, "bidAmount": 5000}),
        (
            "NOTIFICATION",
            {"id": "n1", "type": "info", "title": "Hi", "body": "b", "data": {}, "createdAt": 1},
        ),
    ]:
        await publish_event(outside, f"user:{pair.client.id}", kind, data)
        for conn in sessions:
            assert (await conn.expect(kind))["data"] == data


async def test_concurrent_senders_on_two_nodes_get_gapless_seq(
    make_node: NodeFactory, pair: Pair, pool: asyncpg.Pool
) -> None:
    a_node, b_node = await make_node(**FAST), await make_node(**FAST)
    senders = [
        await a_node.connect(pair.client),
        await a_node.connect(pair.doer),
        await b_node.connect(pair.client),
        await b_node.connect(pair.doer),
    ]
    readers = [
        await a_node.connect(pair.doer, pair.order_id),
        await b_node.connect(pair.client, pair.order_id),
    ]
    per_sender = 25
    total = per_sender * len(senders)

    async def send_all(conn: Conn, n: int) -> list[int]:
        return [
            (await conn.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": f"{n}-{i}"}))["seq"]
            for i in range(per_sender)
        ]

    acked = await asyncio.gather(*(send_all(c, n) for n, c in enumerate(senders)))
    assert sorted(s for seqs in acked for s in seqs) == list(range(1, total + 1))
    stored = await pool.fetch("SELECT seq FROM messages WHERE order_id = $1 ORDER BY seq", pair.order_id)
    assert [r["seq"] for r in stored] == list(range(1, total + 1))
    for reader in readers:  # each node delivers them live, in seq order, once
        assert await collect(reader, total) == list(range(1, total + 1))
        assert [f for f in await reader.quiet(0.2) if f["type"] == "CHAT_MESSAGE"] == []
