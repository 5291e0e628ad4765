"""Chat history and unread counts over REST."""

from __future__ import annotations

import uuid

import asyncpg

from hub.settings import Settings
from tests.factories import make_user
from tests.hub.conftest import Node, NodeFactory, Pair


async def test_history_pages_back_for_participants_only(
    make_node: NodeFactory, pair: Pair, pool: asyncpg.Pool, settings: Settings
) -> None:
    node: Node = await make_node(chat_rate_per_s=1000.0, chat_burst=1000)
    a = await node.connect(pair.client)
    for i in range(7):
        await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": f"m{i}"})
    http = node.client
    resp = await http.get(f"/api/orders/{pair.order_id}/messages?limit=3", headers=pair.doer.headers)
    body = await resp.json()
    assert resp.status == 200, body
    assert [m["seq"] for m in body["data"]] == [5, 6, 7] and body["nextBeforeSeq"] == 5
    assert body["data"][0]["text"] == "m4" and body["data"][0]["senderId"] == pair.client.id
    resp = await http.get(
        f"/api/orders/{pair.order_id}/messages?limit=3&beforeSeq=5", headers=pair.doer.headers
    )
    assert [m["seq"] for m in (await resp.json())["data"]] == [2, 3, 4]
    resp = await http.get(
        f"/api/orders/{pair.order_id}/messages?limit=3&beforeSeq=2", headers=pair.doer.headers
    )
    body = await resp.json()
    assert [m["seq"] for m in body["data"]] == [1] and body["nextBeforeSeq"] is None

    stranger = await make_user(pool, settings)
    for path in (f"/api/orders/{pair.order_id}/messages", f"/api/orders/{pair.order_id}/unread"):
        resp = await http.get(path, headers=stranger.headers)
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
        resp = await http.get(path)
        assert resp.status == 401
    for bad in ("limit=0", "limit=101", "beforeSeq=x", "beforeSeq=0"):
        resp = await http.get(f"/api/orders/{pair.order_id}/messages?{bad}", headers=pair.doer.headers)
        assert resp.status == 400, bad
    resp = await http.get(f"/api/orders/{uuid.uuid4()}/messages", headers=pair.doer.headers)
    assert resp.status == 404
    resp = await http.get("/api/orders/nope/messages", headers=pair.doer.headers)
    assert resp.status == 404


async def test_unread_counts_follow_read_marks(node: Node, pair: Pair) -> None:
    a = await node.connect(pair.client)
    b = await node.connect(pair.doer)
    acks = [await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": f"m{i}"}) for i in range(4)]
    await b.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "mine"})  # own messages never unread
    http = node.client
    resp = await http.get(f"/api/orders/{pair.order_id}/unread", headers=pair.doer.headers)
    assert (await resp.json())["data"] == {
        "orderId": pair.order_id,
        "unread": 4,
        "lastSeq": 5,
        "lastReadSeq": 0,
    }
    await b.ack("MESSAGE_READ", {"messageId": acks[2]["id"]})
    resp = await http.get("/api/chats/unread", headers=pair.doer.headers)
    body = await resp.json()
    assert body["data"] == [{"orderId": pair.order_id, "unread": 1, "lastSeq": 5, "lastReadSeq": 3}]
    assert body["total"] == 1
    resp = await http.get("/api/chats/unread", headers=pair.client.headers)
    assert (await resp.json())["data"][0]["unread"] == 1
