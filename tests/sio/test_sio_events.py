"""Every client and server event over Socket.IO, with acks and error acks, against real PostgreSQL."""

from __future__ import annotations

import asyncpg
import orjson
import pytest
import socketio.packet

from hub.frame import Frame
from hub.keys import BROKER, HUB
from hub.publish import publish_event
from hub.settings import Settings
from hub.transport_sio import ack_frame, event_packet
from tests.factories import make_user
from tests.hub.conftest import NodeFactory
from tests.sio.conftest import Node, Pair, eventually, make_node, sio_connect

__all__ = ["make_node"]

UNKNOWN_ORDER = "00000000-0000-4000-8000-000000000000"


async def _count(pool: asyncpg.Pool, order_id: str) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM messages WHERE order_id = $1", order_id)
    return n


async def test_chat_message_stored_acked_and_delivered(node: Node, pair: Pair, pool: asyncpg.Pool) -> None:
    a = await sio_connect(node, pair.client, subscribe=pair.order_id)
    b = await sio_connect(node, pair.doer, subscribe=pair.order_id)
    ack = await a.call("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "hello", "clientMsgId": "m-1"})
    assert set(ack) == {"id", "seq", "createdAt", "clientMsgId"}
    assert (ack["seq"], ack["clientMsgId"]) == (1, "m-1")
    for conn in (a, b):
        got = await conn.expect("CHAT_MESSAGE")
        assert got == {
            "id": ack["id"],
            "orderId": pair.order_id,
            "seq": 1,
            "senderId": pair.client.id,
            "text": "hello",
            "attachments": [],
            "clientMsgId": "m-1",
            "createdAt": ack["createdAt"],
        }
    # A resend with the same clientMsgId names the message first stored, and stores nothing.
    again = await a.call("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "hello", "clientMsgId": "m-1"})
    assert again == ack
    assert await _count(pool, pair.order_id) == 1
    await a.close()
    await b.close()


async def test_replay_since_seq_arrives_before_the_ack(node: Node, pair: Pair) -> None:
    a = await sio_connect(node, pair.client, subscribe=pair.order_id)
    for i in range(1, 5):
        await a.call("CHAT_MESSAGE", {"orderId": pair.order_id, "text": f"m{i}"})
    late = await sio_connect(node, pair.doer)
    ack = await late.call("SUBSCRIBE_CHAT", {"orderId": pair.order_id, "sinceSeq": 1})
    assert ack == {"orderId": pair.order_id, "lastSeq": 4, "replayed": 3}
    # The replay was queued before the ack, so it is already here, in seq order.
    assert [d["seq"] for _, d in await late.quiet(0.2)] == [2, 3, 4]
    await a.call("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "live"})
    assert (await late.expect("CHAT_MESSAGE"))["seq"] == 5
    await a.close()
    await late.close()


async def test_read_typing_ping_and_unsubscribe(node: Node, pair: Pair) -> None:
    a = await sio_connect(node, pair.client, subscribe=pair.order_id)
    b = await sio_connect(node, pair.doer, subscribe=pair.order_id)
    sent = await a.call("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "read me"})
    await b.expect("CHAT_MESSAGE")

    read = await b.call("MESSAGE_READ", {"messageId": sent["id"]})
    assert read == {"orderId": pair.order_id, "seq": 1}
    mark = await a.expect("MESSAGE_READ")
    assert (mark["userId"], mark["messageId"], mark["seq"]) == (pair.doer.id, sent["id"], 1)
    assert isinstance(mark["readAt"], int)

    assert await b.call("TYPING_START", {"orderId": pair.order_id}) == {"orderId": pair.order_id}
    assert await a.expect("TYPING_START") == {"orderId": pair.order_id, "userId": pair.doer.id}
    assert await b.call("TYPING_STOP", {"orderId": pair.order_id}) == {"orderId": pair.order_id}
    assert await a.expect("TYPING_STOP") == {"orderId": pair.order_id, "userId": pair.doer.id}
    # The typer does not see its own typing.
    assert [e for e, _ in await b.quiet(0.2) if e.startswith("TYPING")] == []

    assert await a.call("PING") == {}
    assert await a.expect("PONG") is None

    assert await b.call("UNSUBSCRIBE_CHAT", {"orderId": pair.order_id}) == {"orderId": pair.order_id}
    await a.call("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "after"})
    assert [e for e, _ in await b.quiet(0.3)] == []
    await a.close()
    await b.close()


async def test_server_events_to_the_user_channel(node: Node, pair: Pair) -> None:
    conn = await sio_connect(node, pair.doer)
    update = {
        "orderId": pair.order_id,
        "status": "submitted",
        "escrowState": "funded",
        "previousStatus": "in_progress",
        "actorId": pair.doer.id,
        "updatedAt": 1,
    }
    await publish_event(node.app[BROKER], f"user:{pair.doer.id}", "ORDER_UPDATE", update)
    assert await conn.expect("ORDER_UPDATE") == update
    note = {
        "id": "n1",
        "type": "payment",
        "title": "Paid",
        "body": "Escrow funded",
        "data": {},
        "createdAt": 2,
    }
    await publish_event(node.app[BROKER], f"user:{pair.doer.id}", "NOTIFICATION", note)
    assert await conn.expect("NOTIFICATION") == note
    await conn.close()


@pytest.mark.parametrize(
    ("event", "data", "code"),
    [
        ("CHAT_MESSAGE", {"text": "no order"}, "bad_request"),
        ("CHAT_MESSAGE", {"orderId": "not-a-uuid", "text": "x"}, "bad_request"),
        ("CHAT_MESSAGE", {"orderId": "ORDER", "text": ""}, "bad_request"),
        ("CHAT_MESSAGE", {"orderId": "ORDER", "text": "x" * 4001}, "too_large"),
        ("CHAT_MESSAGE", {"orderId": UNKNOWN_ORDER, "text": "x"}, "not_found"),
        ("CHAT_MESSAGE", "just a string", "bad_request"),
        ("SUBSCRIBE_CHAT", {"orderId": UNKNOWN_ORDER}, "not_found"),
        ("SUBSCRIBE_CHAT", {"orderId": "ORDER", "sinceSeq": -1}, "bad_request"),
        ("MESSAGE_READ", {"messageId": UNKNOWN_ORDER}, "not_found"),
        ("NO_SUCH_EVENT", {}, "bad_request"),
        ("CHAT_MESSAGE", {"orderId": "ORDER", "text": "lone \ud800 surrogate"}, "bad_request"),
    ],
)
async def test_bad_events_get_an_error_ack_and_change_nothing(
    node: Node, pair: Pair, pool: asyncpg.Pool, event: str, data: object, code: str
) -> None:
    conn = await sio_connect(node, pair.client)
    if isinstance(data, dict):
        data = {k: (pair.order_id if v == "ORDER" else v) for k, v in data.items()}
    ack = await conn.call(event, data)
    assert ack["error"]["code"] == code, ack
    assert ack["error"]["message"]
    assert await _count(pool, pair.order_id) == 0
    # The connection stays usable.
    assert await conn.call("PING") == {}
    await conn.close()


async def test_outsider_is_forbidden(node: Node, pair: Pair, pool: asyncpg.Pool, settings: Settings) -> None:
    outsider = await make_user(pool, settings)
    conn = await sio_connect(node, outsider)
    for event, data in [
        ("SUBSCRIBE_CHAT", {"orderId": pair.order_id}),
        ("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "let me in"}),
        ("TYPING_START", {"orderId": pair.order_id}),
    ]:
        ack = await conn.call(event, data)
        assert ack["error"]["code"] == "forbidden", (event, ack)
    assert await _count(pool, pair.order_id) == 0
    await conn.close()


async def test_event_without_ack_gets_an_error_event(node: Node, pair: Pair) -> None:
    conn = await sio_connect(node, pair.client)
    await conn.client.emit("CHAT_MESSAGE", {"orderId": "nope", "text": "x"})
    error = await conn.expect("ERROR")
    assert error["code"] == "bad_request"
    await conn.close()


async def test_rate_limited_with_retry_after(make_node: NodeFactory, pair: Pair, pool: asyncpg.Pool) -> None:
    node = await make_node(chat_rate_per_s=1.0, chat_burst=2)
    conn = await sio_connect(node, pair.client)
    acks = [await conn.call("CHAT_MESSAGE", {"orderId": pair.order_id, "text": f"m{i}"}) for i in range(3)]
    assert [("error" in a) for a in acks] == [False, False, True]
    assert acks[2]["error"]["code"] == "rate_limited"
    assert acks[2]["error"]["retryAfterMs"] > 0
    assert await _count(pool, pair.order_id) == 2
    await conn.close()


async def test_each_frame_is_encoded_once_for_all_socketio_sessions(
    node: Node, pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[str] = []

    def counting(frame: Frame) -> object:
        builds.append(frame.type)
        return event_packet(frame)

    monkeypatch.setattr("hub.transport_sio.event_packet", counting)
    conns = [await sio_connect(node, user, subscribe=pair.order_id) for user in (pair.client, pair.doer) * 2]
    builds.clear()
    await conns[0].call("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "to four sessions"})
    for conn in conns:
        await conn.expect("CHAT_MESSAGE")
    assert builds.count("CHAT_MESSAGE") == 1
    for conn in conns:
        await conn.close()


def test_packets_match_socketio_encoding() -> None:
    frame = Frame.encode("CHAT_MESSAGE", {"orderId": "o", "text": 'hé \u2028 "q"'})
    ours = event_packet(frame).encode()
    theirs = socketio.packet.Packet(socketio.packet.EVENT, data=["CHAT_MESSAGE", frame.payload]).encode()
    assert (
        socketio.packet.Packet(encoded_packet=ours[1:]).data
        == socketio.packet.Packet(encoded_packet=theirs).data
    )
    assert ours[0] == "4"
    assert event_packet(Frame.encode("PONG")).encode() == "42" + '["PONG"]'
    ack = ack_frame(7, {"seq": 1}).for_transport("sio", lambda f: None).encode()
    assert socketio.packet.Packet(encoded_packet=ack[1:]).id == 7
    assert socketio.packet.Packet(encoded_packet=ack[1:]).data == [{"seq": 1}]


async def test_slow_reader_is_disconnected_and_others_unaffected(make_node: NodeFactory, pair: Pair) -> None:
    node = await make_node(ws_queue_max_frames=5, ws_queue_max_bytes=1024 * 1024)
    hub = node.app[HUB]
    # A raw Engine.IO WebSocket that authenticates and then never reads: its TCP buffers fill, then
    # Engine.IO's queue, then the session's bounded queue, which closes it.
    ws = await node.client.ws_connect("/socket.io/?EIO=4&transport=websocket")
    await ws.receive()  # Engine.IO OPEN
    await ws.send_str("40" + orjson.dumps({"token": pair.doer.token}).decode())
    healthy = await sio_connect(node, pair.client)
    await eventually(lambda: any(s.user_id == pair.doer.id for s in hub.sessions))
    slow = next(s for s in hub.sessions if s.user_id == pair.doer.id)
    blob = {"id": "x", "type": "t", "title": "t", "body": "b" * 30_000, "data": {}, "createdAt": 1}
    for _ in range(400):
        await publish_event(node.app[BROKER], f"user:{pair.doer.id}", "NOTIFICATION", blob)
        if slow.closing:
            break
    await eventually(lambda: slow not in hub.sessions, within=15)
    assert slow.closing
    assert node.app[HUB].metrics.queue_overflows.labels("sio")._value.get() >= 1
    # The other session still works.
    assert await healthy.call("PING") == {}
    await healthy.close()
    await ws.close()
