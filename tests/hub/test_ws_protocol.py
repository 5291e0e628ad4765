"""Authentication, errors, limits and close codes of /ws (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from hub import chat
from hub.keys import BROKER
from hub.metrics import METRICS
from hub.publish import publish_event
from hub.settings import Settings
from hub.tokens import TokenCodec
from tests.hub.conftest import Node, NodeFactory, Pair


async def test_token_in_query(node: Node, pair: Pair) -> None:
    conn = await node.raw(f"?token={pair.client.token}")
    hello = await conn.next()
    assert hello["type"] == "AUTHENTICATED"
    assert hello["data"]["userId"] == pair.client.id
    assert len(hello["data"]["sessionId"]) == 32
    assert abs(hello["data"]["serverTime"] - time.time() * 1000) < 60_000


async def test_token_in_first_frame_with_ref(node: Node, pair: Pair) -> None:
    conn = await node.raw()
    await conn.send("AUTHENTICATE", {"token": pair.doer.token}, ref="a1")
    hello = await conn.next()
    assert hello["type"] == "AUTHENTICATED" and hello["ref"] == "a1"
    assert hello["data"]["userId"] == pair.doer.id


async def test_events_before_authentication_are_refused_and_connection_stays(node: Node, pair: Pair) -> None:
    conn = await node.raw()
    await conn.send("SUBSCRIBE_CHAT", {"orderId": pair.order_id}, ref="s1")
    err = await conn.next()
    assert err["type"] == "ERROR" and err["ref"] == "s1" and err["data"]["code"] == "unauthorized"
    await conn.send("AUTHENTICATE", {"token": pair.client.token})
    assert (await conn.next())["type"] == "AUTHENTICATED"


@pytest.mark.parametrize("where", ["query", "frame"])
async def test_bad_or_expired_token_closes_4401(
    node: Node, settings: Settings, pair: Pair, where: str
) -> None:
    expired = TokenCodec(settings).issue(pair.client.id, now=int(time.time()) - 3 * 86400)
    for token, reason in (
        ("not-a-jwt", "malformed token"),
        (expired, "token expired"),
        (TokenCodec(settings.with_(jwt_secret="y" * 40)).issue(pair.client.id), "bad signature"),
    ):
        if where == "query":
            conn = await node.raw(f"?token={token}")
        else:
            conn = await node.raw()
            await conn.send("AUTHENTICATE", {"token": token}, ref="t")
        err = await conn.next()
        assert err["type"] == "ERROR" and err["data"]["code"] == "unauthorized"
        # The reason in fixed words, never the JWT library's text.
        assert err["data"]["message"] == f"The token is not valid ({reason}); refresh it and reconnect."
        assert await conn.closed() == 4401


async def test_no_authentication_in_time_closes_4408(make_node: NodeFactory) -> None:
    node = await make_node(ws_auth_timeout=0.5)
    conn = await node.raw()
    assert await conn.closed(within=5) == 4408


async def test_frame_over_64_kib_closes_1009(node: Node, pair: Pair) -> None:
    conn = await node.connect(pair.client)
    await conn.ws.send_str(orjson.dumps({"type": "PING", "data": {"x": "y" * 70_000}}).decode())
    assert await conn.closed() == 1009


BAD_FRAMES: list[tuple[Any, str]] = [
    ("not json", "bad_request"),
    ("[1, 2]", "bad_request"),
    ('"text"', "bad_request"),
    ("{}", "bad_request"),
    ('{"type": "NOPE"}', "bad_request"),
    ('{"type": 7}', "bad_request"),
    ('{"type": "CHAT_MESSAGE", "data": []}', "bad_request"),
    ('{"type": "CHAT_MESSAGE", "data": {"text": "x"}}', "bad_request"),
    ('{"type": "CHAT_MESSAGE", "data": {"orderId": "abc", "text": "x"}}', "bad_request"),
    ('{"type": "SUBSCRIBE_CHAT", "data": {"orderId": "%s", "sinceSeq": -1}}', "bad_request"),
    ('{"type": "SUBSCRIBE_CHAT", "data": {"orderId": "%s", "sinceSeq": "3"}}', "bad_request"),
    ('{"type": "CHAT_MESSAGE", "data": {"orderId": "%s", "text": "   "}}', "bad_request"),
    ('{"type": "CHAT_MESSAGE", "data": {"orderId": "%s", "text": 5}}', "bad_request"),
    (
        '{"type": "CHAT_MESSAGE", "data": {"orderId": "%s", "attachments": [{"url": "ftp://x/y"}]}}',
        "bad_request",
    ),
    ('{"type": "CHAT_MESSAGE", "data": {"orderId": "%s", "text": "' + "x" * 4001 + '"}}', "too_large"),
    (
        '{"type": "CHAT_MESSAGE", "data": {"orderId": "%s", "attachments": ['
        + ",".join(['{"url": "https://a.example/f"}'] * 11)
        + "]}}",
        "too_large",
    ),
    ('{"type": "CHAT_MESSAGE", "data": {"orderId": "%s", "text": "a\\u0000b"}}', "bad_request"),
    (
        '{"type": "CHAT_MESSAGE", "data": {"orderId": "%s", "text": "a", "clientMsgId": "\\u0000"}}',
        "bad_request",
    ),
    ('{"type": "PING", "ref": 5}', "bad_request"),
    ('{"type": "PING", "ref": "' + "r" * 65 + '"}', "bad_request"),
]


async def test_bad_frames_get_an_error_and_change_nothing(node: Node, pair: Pair, pool: asyncpg.Pool) -> None:
    conn = await node.connect(pair.client, subscribe=pair.order_id)
    for raw, code in BAD_FRAMES:
        text = raw % pair.order_id if "%s" in raw else raw
        await conn.ws.send_str(text)
        err = await conn.next()
        assert err["type"] == "ERROR" and err["data"]["code"] == code, (text[:80], err)
        assert "ref" not in err
    await conn.ws.send_bytes(b'{"type": "PING"}')
    err = await conn.next()
    assert err["type"] == "ERROR" and err["data"]["code"] == "bad_request"
    # A bad frame with a valid ref is answered with that ref.
    err = await conn.request("CHAT_MESSAGE", {"orderId": pair.order_id})
    assert err["type"] == "ERROR" and err["data"]["code"] == "bad_request"
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE order_id = $1", pair.order_id) == 0
    assert (await conn.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "still open"}))["seq"] == 1


async def test_rate_limited_with_retry_after(make_node: NodeFactory, pair: Pair, pool: asyncpg.Pool) -> None:
    node = await make_node(chat_rate_per_s=1.0, chat_burst=3)
    conn = await node.connect(pair.client)
    for i in range(3):
        await conn.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": f"{i}"})
    err = await conn.request("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "too fast"})
    assert err["type"] == "ERROR" and err["data"]["code"] == "rate_limited"
    assert 0 < err["data"]["retryAfterMs"] <= 1000
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE order_id = $1", pair.order_id) == 3
    await asyncio.sleep(err["data"]["retryAfterMs"] / 1000 + 0.05)
    assert (await conn.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "later"}))["seq"] == 4


async def test_database_failure_is_internal_and_stores_nothing(
    node: Node, pair: Pair, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any) -> Any:
        raise OSError("connection to PostgreSQL lost")

    conn = await node.connect(pair.client)
    monkeypatch.setattr(chat, "store_batch", broken)
    err = await conn.request("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "x"})
    assert err["type"] == "ERROR" and err["data"]["code"] == "internal"
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE order_id = $1", pair.order_id) == 0


async def test_slow_reader_is_closed_1013_and_others_unaffected(make_node: NodeFactory, pair: Pair) -> None:
    node = await make_node(ws_queue_max_frames=50, event_rate_per_s=10_000.0, event_burst=10_000)
    slow = await node.connect(pair.client)
    fast = await node.connect(pair.doer)
    broker = node.app[BROKER]
    blob = "z" * 4000
    # `slow` reads nothing while ~16 MB are addressed to it: far more than socket buffers hold.
    for i in range(4000):
        await publish_event(broker, f"user:{pair.client.id}", "NOTIFICATION", {"id": str(i), "body": blob})
        if i % 500 == 0:
            await publish_event(broker, f"user:{pair.doer.id}", "NOTIFICATION", {"id": str(i), "body": "x"})
    overflows = node.app[METRICS].queue_overflows.labels("ws")
    assert overflows._value.get() == 1
    assert await slow.closed(within=10) == 1013
    got = [f for f in await fast.quiet(0.5) if f["type"] == "NOTIFICATION"]
    assert len(got) == 8
    assert (await fast.ack("SUBSCRIBE_CHAT", {"orderId": pair.order_id}))["orderId"] == pair.order_id


async def test_shutdown_closes_sessions_with_1001(node: Node, pair: Pair) -> None:
    conn = await node.connect(pair.client, subscribe=pair.order_id)
    closing = asyncio.create_task(node.client.server.close())
    assert await conn.closed() == 1001
    await closing


async def test_metrics_endpoint(node: Node, pair: Pair) -> None:
    conn = await node.connect(pair.client, subscribe=pair.order_id)
    await conn.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "count me"})
    await conn.expect("CHAT_MESSAGE")
    resp = await node.client.get("/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert 'gigwire_connections{transport="ws"} 1.0' in text
    assert 'gigwire_frames_in_total{transport="ws",type="CHAT_MESSAGE"} 1.0' in text
    assert 'gigwire_frames_out_total{transport="ws",type="CHAT_MESSAGE"} 1.0' in text
    assert "gigwire_send_to_deliver_seconds_count 1.0" in text
    for name in ("gigwire_deliveries_total", "gigwire_broker_reconnects_total", "gigwire_queue_overflows"):
        assert name in text


async def test_unknown_ids_never_leak_existence_of_messages(
    node: Node, pair: Pair, pool: asyncpg.Pool, settings: Settings
) -> None:
    from tests.factories import make_order, make_user

    other_client = await make_user(pool, settings)
    other_doer = await make_user(pool, settings)
    other_order = await make_order(pool, other_client, other_doer)
    c = await node.connect(other_client)
    ack = await c.ack("CHAT_MESSAGE", {"orderId": other_order, "text": "private"})
    conn = await node.connect(pair.client)
    err = await conn.request("MESSAGE_READ", {"messageId": ack["id"]})
    assert err["data"]["code"] == "forbidden"
    assert await pool.fetchval("SELECT count(*) FROM message_reads WHERE order_id = $1", other_order) == 0
    err = await conn.request("MESSAGE_READ", {"messageId": str(uuid.uuid4())})
    assert err["data"]["code"] == "not_found"
    _ = aiohttp
