"""The chat events over /ws on one node: subscribe, send, deliver, replay, read marks, typing."""

from __future__ import annotations

import uuid

import asyncpg

from hub.frame import Frame
from hub.keys import HUB
from tests.hub.conftest import Node, NodeFactory, Pair


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


async def test_resend_with_same_client_msg_id_is_stored_once(
    node: Node, pair: Pair, pool: asyncpg.Pool
) -> None:
    a = await node.connect(pair.client, subscribe=pair.order_id)
    msg = {"orderId": pair.order_id, "text": "once", "clientMsgId": "dup-1"}
    first = await a.ack("CHAT_MESSAGE", msg)
    again = await a.ack("CHAT_MESSAGE", msg)
    assert again == first
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE order_id = $1", pair.order_id) == 1
    # The other participant may use the same clientMsgId: it is per sender.
    b = await node.connect(pair.doer)
    other = await b.ack("CHAT_MESSAGE", {**msg, "text": "mine"})
    assert other["seq"] == 2


async def test_attachments_only_message(node: Node, pair: Pair) -> None:
    a = await node.connect(pair.client, subscribe=pair.order_id)
    files = [{"url": "https://cdn.example/x.png", "name": "x.png", "mime": "image/png", "size": 12}]
    ack = await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "attachments": files})
    got = await a.expect("CHAT_MESSAGE")
    assert (
        got["data"]["attachments"] == files and got["data"]["text"] == "" and got["data"]["id"] == ack["id"]
    )


async def test_outsiders_and_unknown_orders_are_refused(
    node: Node, pair: Pair, pool: asyncpg.Pool, settings
) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import make_user

    stranger = await make_user(pool, settings)
    s = await node.connect(stranger)
    for kind, data in [
        ("SUBSCRIBE_CHAT", {"orderId": pair.order_id}),
        ("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "let me in"}),
        ("TYPING_START", {"orderId": pair.order_id}),
    ]:
        err = await s.request(kind, data)
        assert err["type"] == "ERROR" and err["data"]["code"] == "forbidden", err
    missing = str(uuid.uuid4())
    err = await s.request("SUBSCRIBE_CHAT", {"orderId": missing})
    assert err["data"]["code"] == "not_found"
    err = await s.request("CHAT_MESSAGE", {"orderId": missing, "text": "x"})
    assert err["data"]["code"] == "not_found"
    err = await s.request("MESSAGE_READ", {"messageId": missing})
    assert err["data"]["code"] == "not_found"
    err = await s.request("SUBSCRIBE_CHAT", {"orderId": "not-a-uuid"})
    assert err["data"]["code"] == "bad_request"
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE order_id = $1", pair.order_id) == 0


async def test_replay_since_seq_then_live(node: Node, pair: Pair) -> None:
    a = await node.connect(pair.client, subscribe=pair.order_id)
    for i in range(5):
        await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": f"m{i}"})
    b = await node.connect(pair.doer)
    ack = await b.ack("SUBSCRIBE_CHAT", {"orderId": pair.order_id, "sinceSeq": 2})
    assert ack == {"orderId": pair.order_id, "lastSeq": 5, "replayed": 3}
    seen = [f["data"]["seq"] for f in b.skipped if f["type"] == "CHAT_MESSAGE"]
    assert seen == [3, 4, 5]
    await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "live"})
    live = await b.expect("CHAT_MESSAGE")
    assert live["data"]["seq"] == 6
    # Without sinceSeq: nothing replayed, lastSeq tells where the chat is.
    c = await node.connect(pair.doer)
    assert await c.ack("SUBSCRIBE_CHAT", {"orderId": pair.order_id}) == {
        "orderId": pair.order_id,
        "lastSeq": 6,
        "replayed": 0,
    }


async def test_replay_while_messages_are_being_sent_has_no_gap(make_node: NodeFactory, pair: Pair) -> None:
    import asyncio

    node = await make_node(chat_rate_per_s=10_000.0, chat_burst=10_000)
    a = await node.connect(pair.client, subscribe=pair.order_id)
    total = 60

    async def sender() -> None:
        for i in range(total):
            await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": f"m{i}"})

    task = asyncio.create_task(sender())
    await asyncio.sleep(0.05)
    b = await node.connect(pair.doer)
    ref_frame = await b.request("SUBSCRIBE_CHAT", {"orderId": pair.order_id, "sinceSeq": 0})
    assert ref_frame["type"] == "ACK"
    await task
    seqs = [f["data"]["seq"] for f in b.skipped if f["type"] == "CHAT_MESSAGE"]
    while len(seqs) < total:
        seqs.append((await b.expect("CHAT_MESSAGE"))["data"]["seq"])
    assert seqs == list(range(1, total + 1))
    assert await b.quiet(0.2) == []


async def test_unsubscribe_stops_delivery(node: Node, pair: Pair) -> None:
    a = await node.connect(pair.client, subscribe=pair.order_id)
    b = await node.connect(pair.doer, subscribe=pair.order_id)
    assert await b.ack("UNSUBSCRIBE_CHAT", {"orderId": pair.order_id}) == {"orderId": pair.order_id}
    await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "gone?"})
    await a.expect("CHAT_MESSAGE")
    assert await b.quiet(0.3) == []


async def test_message_read_moves_mark_up_only_and_is_relayed(
    node: Node, pair: Pair, pool: asyncpg.Pool
) -> None:
    a = await node.connect(pair.client, subscribe=pair.order_id)
    b = await node.connect(pair.doer, subscribe=pair.order_id)
    first = await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "1"})
    second = await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "2"})
    assert await b.ack("MESSAGE_READ", {"messageId": second["id"]}) == {"orderId": pair.order_id, "seq": 2}
    read = await a.expect("MESSAGE_READ")
    assert read["data"]["userId"] == pair.doer.id and read["data"]["seq"] == 2
    assert read["data"]["messageId"] == second["id"] and isinstance(read["data"]["readAt"], int)
    # Older message: the mark stays, nothing relayed.
    assert await b.ack("MESSAGE_READ", {"messageId": first["id"]}) == {"orderId": pair.order_id, "seq": 2}
    assert [f for f in await a.quiet(0.3) if f["type"] == "MESSAGE_READ"] == []
    mark = await pool.fetchval(
        "SELECT last_read_seq FROM message_reads WHERE order_id = $1 AND user_id = $2",
        pair.order_id,
        pair.doer.id,
    )
    assert mark == 2


async def test_typing_relayed_to_others_throttled_and_expired(
    node: Node, pair: Pair, monkeypatch: object
) -> None:
    import hub.handlers

    monkeypatch.setattr(hub.handlers, "TYPING_TTL_S", 0.4)  # type: ignore[attr-defined]
    a = await node.connect(pair.client, subscribe=pair.order_id)
    b = await node.connect(pair.doer, subscribe=pair.order_id)
    assert await a.ack("TYPING_START", {"orderId": pair.order_id}) == {"orderId": pair.order_id}
    await a.send("TYPING_START", {"orderId": pair.order_id})  # a renewal: not relayed again
    start = await b.expect("TYPING_START")
    assert start["data"] == {"orderId": pair.order_id, "userId": pair.client.id}
    stop = await b.expect("TYPING_STOP", within=3)  # the server ends it without renewal
    assert stop["data"] == {"orderId": pair.order_id, "userId": pair.client.id}
    assert [f for f in b.skipped if f["type"] == "TYPING_START"] == []
    # The typist's own session does not get its typing back.
    assert [f for f in await a.quiet(0.2) if f["type"].startswith("TYPING")] == []
    await a.ack("TYPING_START", {"orderId": pair.order_id})
    await b.expect("TYPING_START")
    await a.ack("TYPING_STOP", {"orderId": pair.order_id})
    await b.expect("TYPING_STOP")


async def test_ping_pong_and_frames_without_ref(node: Node, pair: Pair) -> None:
    a = await node.connect(pair.client)
    await a.send("PING", ref="p1")
    pong = await a.next()
    assert pong == {"type": "PONG", "ref": "p1"}
    await a.send("PING")
    assert await a.next() == {"type": "PONG"}
    await a.send("SUBSCRIBE_CHAT", {"orderId": pair.order_id})  # no ref: no ACK
    await a.send("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "x"})
    got = await a.expect("CHAT_MESSAGE")
    assert got["data"]["seq"] == 1
    assert all(f["type"] != "ACK" for f in a.skipped)


async def test_resend_publishes_a_message_whose_first_publish_was_lost(node: Node, pair: Pair) -> None:
    """Stored but never published (a crash after the commit): the resend delivers it, once."""
    a = await node.connect(pair.client, subscribe=pair.order_id)
    b = await node.connect(pair.doer, subscribe=pair.order_id)
    hub = node.app[HUB]
    real_send = hub.send_chat
    dropped: list[str] = []

    def lose_once(order_id: str, frame: Frame) -> None:
        if not dropped:  # stored and ACKed, then the process "crashed" before sending it on
            dropped.append(order_id)
            return
        real_send(order_id, frame)

    hub.send_chat = lose_once  # type: ignore[method-assign]
    msg = {"orderId": pair.order_id, "text": "lost once", "clientMsgId": "lost-1"}
    first = await a.ack("CHAT_MESSAGE", msg)
    assert dropped == [pair.order_id]
    assert [f for f in await b.quiet(0.2) if f["type"] == "CHAT_MESSAGE"] == []
    again = await a.ack("CHAT_MESSAGE", msg)
    assert again == first
    got = await b.expect("CHAT_MESSAGE")
    assert got["data"]["id"] == first["id"] and got["data"]["seq"] == 1
    await a.ack("CHAT_MESSAGE", msg)  # a third send: already delivered, so not shown again
    assert [f for f in await b.quiet(0.3) if f["type"] == "CHAT_MESSAGE"] == []


async def test_replay_larger_than_the_byte_bound_arrives_whole(make_node: NodeFactory, pair: Pair) -> None:
    """A replay page whose messages add up to more than the queue's byte bound is paced, not cut."""
    node = await make_node(ws_queue_max_bytes=20_000, chat_rate_per_s=1000, chat_burst=1000)
    a = await node.connect(pair.client)
    texts = [f"{i:02d}" + "x" * 3000 for i in range(30)]  # about 90 KB in all
    for text in texts:
        await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": text})
    b = await node.connect(pair.doer)
    ack = await b.ack("SUBSCRIBE_CHAT", {"orderId": pair.order_id, "sinceSeq": 0})
    assert ack["replayed"] == 30 and ack["lastSeq"] == 30
    # The replayed frames came before the ACK, in order, whole.
    got = [f["data"] for f in b.skipped if f["type"] == "CHAT_MESSAGE"]
    assert [m["seq"] for m in got] == list(range(1, 31))
    assert [m["text"] for m in got] == texts
    assert await b.quiet(0.2) == [] and not b.ws.closed
