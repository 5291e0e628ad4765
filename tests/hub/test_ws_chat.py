"""The chat events over /ws on one node: subscribe, send, deliver, replay, read marks, typing."""

from __future__ import annotations

import uuid

import asyncpg

from tests.hub.conftest import Node, Pair


async def test_message_stored_acked_and_delivered_to_both(node: Node, pair: Pair, pool: asyncpg.Pool) -> None:
    a = await node.connect(pair.client, subscribe=pair.order_id)
    b = await node.connect(pair.doer, subscribe=pair.order_id)
    ack = await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "hi", "clientMsgId": "c1"})
    assert ack["seq"] == 1 and ack["clientMsgId"] == "c1" and isinstance(ack["createdAt"], int)
    uuid.UUID(ack["id"])
    for conn in (a, b):
        got = await conn.expect("CHAT_MESSAGE")
        assert got["data"] == {
            "id": ack["id"],
            "orderId": pair.order_id,
            "seq": 1,
            "senderId": pair.client.id,
            "text": "hi",
            "attachments": [],
            "clientMsgId": "c1",
            "createdAt": ack["createdAt"],
        }
    row = await pool.fetchrow("SELECT text, seq FROM messages WHERE id = $1", ack["id"])
    assert row is not None and row["text"] == "hi" and row["seq"] == 1
