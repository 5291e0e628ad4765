"""Both transports on two nodes sharing Redis: a raw WebSocket client on node A and a Socket.IO
client on node B talk both ways, through gigwire's own broker (no Socket.IO Redis manager)."""

from __future__ import annotations

import asyncpg
import socketio

from hub.keys import BROKER
from hub.publish import publish_event
from hub.transport_sio import SIO_SERVER
from tests.hub.conftest import NodeFactory
from tests.sio.conftest import Pair, make_node, sio_connect

__all__ = ["make_node"]


async def test_raw_ws_on_one_node_and_socketio_on_another_talk_both_ways(
    make_node: NodeFactory, pair: Pair, pool: asyncpg.Pool
) -> None:
    node_a = await make_node()
    node_b = await make_node()
    # The transport fans out through the hub's broker only, never Socket.IO's own client manager.
    assert type(node_b.app[SIO_SERVER].manager) is socketio.AsyncManager
    ws = await node_a.connect(pair.client, subscribe=pair.order_id)
    sio = await sio_connect(node_b, pair.doer, subscribe=pair.order_id)

    sent = await ws.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "from ws", "clientMsgId": "w1"})
    got = await sio.expect("CHAT_MESSAGE")
    assert (got["id"], got["seq"], got["text"], got["senderId"]) == (sent["id"], 1, "from ws", pair.client.id)

    reply = await sio.call(
        "CHAT_MESSAGE", {"orderId": pair.order_id, "text": "from sio", "clientMsgId": "s1"}
    )
    await ws.expect("CHAT_MESSAGE")  # its own message first: a sender's sessions get it too
    frame = await ws.expect("CHAT_MESSAGE")
    assert frame["data"]["id"] == reply["id"]
    assert (frame["data"]["seq"], frame["data"]["text"]) == (2, "from sio")

    await sio.call("TYPING_START", {"orderId": pair.order_id})
    typing = await ws.expect("TYPING_START")
    assert typing["data"] == {"orderId": pair.order_id, "userId": pair.doer.id}
    await ws.ack("TYPING_START", {"orderId": pair.order_id})
    assert await sio.expect("TYPING_START") == {"orderId": pair.order_id, "userId": pair.client.id}

    await ws.ack("MESSAGE_READ", {"messageId": reply["id"]})
    mark = await sio.expect("MESSAGE_READ")
    assert (mark["userId"], mark["seq"]) == (pair.client.id, 2)

    # A server event published from anywhere reaches the user's Socket.IO session on the other node.
    update = {"orderId": pair.order_id, "status": "submitted", "escrowState": "funded",
              "previousStatus": "in_progress", "actorId": pair.doer.id, "updatedAt": 3}  # fmt: skip
    await publish_event(node_a.app[BROKER], f"user:{pair.doer.id}", "ORDER_UPDATE", update)
    assert await sio.expect("ORDER_UPDATE") == update

    rows = await pool.fetch("SELECT seq, text FROM messages WHERE order_id = $1 ORDER BY seq", pair.order_id)
    assert [(r["seq"], r["text"]) for r in rows] == [(1, "from ws"), (2, "from sio")]
    await sio.close()
    await ws.ws.close()
