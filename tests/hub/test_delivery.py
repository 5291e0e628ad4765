"""Ordered delivery when the broker loses a publish, the in-process broker, and Frame's caching."""

from __future__ import annotations

import asyncpg

from hub import chat
from hub.frame import Frame
from hub.metrics import METRICS
from tests.hub.conftest import NodeFactory, Pair


async def test_lost_publish_is_filled_from_postgres_in_order(
    make_node: NodeFactory, pair: Pair, pool: asyncpg.Pool
) -> None:
    node = await make_node()
    a = await node.connect(pair.client, subscribe=pair.order_id)
    b = await node.connect(pair.doer, subscribe=pair.order_id)
    await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "one"})
    assert (await b.expect("CHAT_MESSAGE"))["data"]["seq"] == 1
    # Stored by a process that died before publishing: seq 2 never reaches the broker.
    await chat.store_message(
        pool, pair.order_id, pair.client.id, "lost publish", [], None, recipient_id=pair.doer.id
    )
    await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "three"})
    got = [(await b.expect("CHAT_MESSAGE"))["data"] for _ in range(2)]
    assert [(m["seq"], m["text"]) for m in got] == [(2, "lost publish"), (3, "three")]
    assert node.app[METRICS].gap_fills._value.get() >= 1


async def test_in_process_broker_without_redis(make_node: NodeFactory, pair: Pair) -> None:
    node = await make_node(redis_url=None)
    a = await node.connect(pair.client, subscribe=pair.order_id)
    b = await node.connect(pair.doer, subscribe=pair.order_id)
    for i in range(5):
        await a.send("CHAT_MESSAGE", {"orderId": pair.order_id, "text": f"m{i}"})
    assert [(await b.expect("CHAT_MESSAGE"))["data"]["seq"] for _ in range(5)] == [1, 2, 3, 4, 5]


def test_frame_encodes_once_and_builds_each_transport_once() -> None:
    frame = Frame.encode("ORDER_UPDATE", {"orderId": "o1", "status": "approved"})
    assert frame.data == b'{"type":"ORDER_UPDATE","data":{"orderId":"o1","status":"approved"}}'
    calls: list[int] = []

    def build(f: Frame) -> bytes:
        calls.append(1)
        return b"42" + f.data

    assert frame.for_transport("sio", build) is frame.for_transport("sio", build)
    assert len(calls) == 1
    received = Frame(frame.data)  # as a broker delivers it: the type is read without a full parse
    assert received.type == "ORDER_UPDATE" and received.payload["status"] == "approved"
    assert Frame(b"[1]").type == "?"
