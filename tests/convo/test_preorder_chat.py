"""Pre-order questions end to end: an applicant and the gig's owner chat on the application (chat
id = the application's id) over /ws on one node and Socket.IO on another; accepting the application
opens the order with the same id, and its chat carries the thread on with gapless seqs; history,
replay after a reconnect and REST all see one continuous chat; strangers are refused."""

from __future__ import annotations

import asyncpg

from tests.convo.conftest import NodeFactory, Thread, api, new_thread
from tests.hub.conftest import Node
from tests.media.conftest import PDF_BYTES, uploaded
from tests.sio.conftest import sio_connect


async def test_ask_before_order_then_accept_keeps_one_chat(
    make_node: NodeFactory, node: Node, pool: asyncpg.Pool, settings: object
) -> None:
    node_b = await make_node()
    t: Thread = await new_thread(node, pool, settings)  # type: ignore[arg-type]
    doer_ws = await node.connect(t.doer, subscribe=t.app_id)
    owner_sio = await sio_connect(node_b, t.owner, subscribe=t.app_id)

    asked = await doer_ws.ack(
        "CHAT_MESSAGE", {"orderId": t.app_id, "text": "Vector or raster?", "clientMsgId": "q1"}
    )
    assert asked["seq"] == 1
    got = await owner_sio.expect("CHAT_MESSAGE")
    assert (got["orderId"], got["seq"], got["senderId"], got["text"]) == (
        t.app_id,
        1,
        t.doer.id,
        "Vector or raster?",
    )
    answer = await owner_sio.call("CHAT_MESSAGE", {"orderId": t.app_id, "text": "Vector, please."})
    assert answer["seq"] == 2
    frame = await doer_ws.expect("CHAT_MESSAGE")  # its own message first
    assert frame["data"]["seq"] == 1
    frame = await doer_ws.expect("CHAT_MESSAGE")
    assert (frame["data"]["seq"], frame["data"]["senderId"]) == (2, t.owner.id)
    # A resend of the same clientMsgId is stored once, as in an order's chat.
    again = await doer_ws.ack(
        "CHAT_MESSAGE", {"orderId": t.app_id, "text": "Vector or raster?", "clientMsgId": "q1"}
    )
    assert again["id"] == asked["id"]
    mark = await doer_ws.ack("MESSAGE_READ", {"messageId": answer["id"]})
    assert mark == {"orderId": t.app_id, "seq": 2}

    status, body = await api(node_b, "POST", f"/api/applications/{t.app_id}/accept", t.owner)
    assert status == 200, body
    order_id = body["data"]["order"]["id"]
    assert order_id == t.app_id  # the order takes the application's id: the thread is its chat

    # The same subscriptions now carry the order's chat, numbered on from the thread.
    sent = await owner_sio.call("CHAT_MESSAGE", {"orderId": order_id, "text": "Paid soon."})
    assert sent["seq"] == 3
    frame = await doer_ws.expect("CHAT_MESSAGE")
    assert (frame["data"]["seq"], frame["data"]["orderId"]) == (3, order_id)
    fourth = await doer_ws.ack("CHAT_MESSAGE", {"orderId": order_id, "text": "Starting now."})
    assert fourth["seq"] == 4

    # Replay after a reconnect, on the other node and transport, is continuous from the thread.
    await doer_ws.ws.close()
    doer_sio = await sio_connect(node_b, t.doer)
    ack = await doer_sio.call("SUBSCRIBE_CHAT", {"orderId": order_id, "sinceSeq": 1})
    replayed = [await doer_sio.expect("CHAT_MESSAGE") for _ in range(3)]
    assert [m["seq"] for m in replayed] == [2, 3, 4]
    assert (ack["lastSeq"], ack["replayed"]) == (4, 3)
    owner_ws = await node.connect(t.owner)
    sub = await owner_ws.request("SUBSCRIBE_CHAT", {"orderId": order_id, "sinceSeq": 0})
    seqs = [f["data"]["seq"] for f in owner_ws.skipped if f["type"] == "CHAT_MESSAGE"]
    assert (sub["type"], seqs) == ("ACK", [1, 2, 3, 4])

    # REST: the order's history and the conversation's history are the same four messages.
    status, body = await api(node, "GET", f"/api/orders/{order_id}/messages", t.doer)
    assert status == 200 and [m["seq"] for m in body["data"]] == [1, 2, 3, 4]
    assert [m["text"] for m in body["data"]][:2] == ["Vector or raster?", "Vector, please."]
    status, body = await api(node, "GET", f"/api/conversations/{order_id}/messages", t.owner)
    assert status == 200 and [m["seq"] for m in body["data"]] == [1, 2, 3, 4]
    rows = await pool.fetch("SELECT seq FROM messages WHERE order_id = $1 ORDER BY seq", order_id)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    await owner_sio.close()
    await doer_sio.close()
    await owner_ws.ws.close()


async def test_strangers_are_refused_on_both_transports(
    make_node: NodeFactory, node: Node, thread: Thread, pool: asyncpg.Pool
) -> None:
    t = thread
    ws = await node.connect(t.stranger)
    for kind, data in (
        ("SUBSCRIBE_CHAT", {"orderId": t.app_id}),
        ("CHAT_MESSAGE", {"orderId": t.app_id, "text": "hello"}),
        ("TYPING_START", {"orderId": t.app_id}),
    ):
        frame = await ws.request(kind, data)
        assert (frame["type"], frame["data"]["code"]) == ("ERROR", "forbidden"), (kind, frame)
    sio = await sio_connect(await make_node(), t.stranger)
    reply = await sio.call("CHAT_MESSAGE", {"orderId": t.app_id, "text": "hello"})
    assert reply["error"]["code"] == "forbidden"
    status, _ = await api(node, "GET", f"/api/conversations/{t.app_id}/messages", t.stranger)
    assert status == 404
    status, _ = await api(node, "GET", f"/api/orders/{t.app_id}/messages", t.doer)
    assert status == 404  # no order yet: the order routes do not serve a pre-order thread
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE order_id = $1", t.app_id) == 0
    await sio.close()


async def test_a_decided_application_thread_takes_no_new_messages(node: Node, thread: Thread) -> None:
    t = thread
    ws = await node.connect(t.doer, subscribe=t.app_id)
    await ws.ack("CHAT_MESSAGE", {"orderId": t.app_id, "text": "Any update?"})
    status, _ = await api(node, "POST", f"/api/applications/{t.app_id}/reject", t.owner)
    assert status == 200
    frame = await ws.request("CHAT_MESSAGE", {"orderId": t.app_id, "text": "Why?"})
    assert (frame["type"], frame["data"]["code"]) == ("ERROR", "forbidden")
    assert "rejected" in frame["data"]["message"]
    status, body = await api(node, "GET", f"/api/conversations/{t.app_id}/messages", t.doer)
    assert status == 200 and [m["text"] for m in body["data"]] == ["Any update?"]


async def test_an_uploaded_attachment_in_a_pre_order_thread_reaches_the_other_user(
    node: Node, thread: Thread
) -> None:
    t = thread
    media = await uploaded(node.client, t.doer, "chat_attachment", PDF_BYTES)
    ws = await node.connect(t.doer)
    ack = await ws.ack("CHAT_MESSAGE", {"orderId": t.app_id, "attachments": [{"mediaId": media["id"]}]})
    assert ack["seq"] == 1
    assert (await api(node, "GET", f"/api/media/{media['id']}", t.owner))[0] == 200  # the thread's other user
    assert (await api(node, "GET", f"/api/media/{media['id']}", t.stranger))[0] == 404
