"""Socket.IO authentication: handshake token, AUTHENTICATE event, refusals, the 10 s limit."""

from __future__ import annotations

import asyncio

import pytest
import socketio

from hub.keys import HUB, SETTINGS
from hub.metrics import METRICS
from hub.settings import Settings
from hub.tokens import TokenCodec
from tests.hub.conftest import NodeFactory
from tests.sio.conftest import Node, Pair, SioConn, eventually, make_node, sio_connect

__all__ = ["make_node"]


def _url(node: Node) -> str:
    return str(node.client.make_url("")).rstrip("/")


async def test_handshake_token_authenticates(node: Node, pair: Pair) -> None:
    conn = await sio_connect(node, pair.client)
    ack = await conn.call("SUBSCRIBE_CHAT", {"orderId": pair.order_id})
    assert ack == {"orderId": pair.order_id, "lastSeq": 0, "replayed": 0}
    await conn.close()


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_both_engine_io_transports_work(node: Node, pair: Pair, transport: str) -> None:
    conn = await sio_connect(node, pair.client, subscribe=pair.order_id, transport=transport)
    ack = await conn.call("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "over " + transport})
    assert ack["seq"] == 1
    got = await conn.expect("CHAT_MESSAGE")
    assert got["text"] == "over " + transport
    await conn.close()


@pytest.mark.parametrize("kind", ["garbage", "expired", "wrong-key"])
async def test_bad_handshake_token_is_refused_unauthorized(
    node: Node, pair: Pair, settings: Settings, kind: str
) -> None:
    token = {
        "garbage": "not-a-jwt",
        "expired": TokenCodec(settings).issue(pair.client.id, now=1_000_000),
        "wrong-key": TokenCodec(settings.with_(jwt_secret="k" * 40)).issue(pair.client.id),
    }[kind]
    conn = SioConn()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await conn.client.connect(_url(node), auth={"token": token}, transports=["websocket"], wait_timeout=5)
    # The CONNECT_ERROR carries {message, data}; data is the protocol's error object.
    assert conn.connect_error["data"]["code"] == "unauthorized", conn.connect_error
    assert "token" in conn.connect_error["data"]["message"]
    assert node.app[HUB].sessions == set()


async def test_authenticate_event_after_connecting(node: Node, pair: Pair) -> None:
    conn = await sio_connect(node)
    # Before authentication every other event is refused, and the connection stays.
    refused = await conn.call("SUBSCRIBE_CHAT", {"orderId": pair.order_id})
    assert refused["error"]["code"] == "unauthorized"
    refused = await conn.call("PING")
    assert refused["error"]["code"] == "unauthorized"
    ack = await conn.call("AUTHENTICATE", {"token": pair.doer.token})
    assert ack["userId"] == pair.doer.id
    assert ack["sessionId"] and isinstance(ack["serverTime"], int)
    hello = await conn.expect("AUTHENTICATED")
    assert hello == ack
    assert (await conn.call("SUBSCRIBE_CHAT", {"orderId": pair.order_id}))["orderId"] == pair.order_id
    # A fresh token for the same user is accepted; another user's is not.
    again = await conn.call("AUTHENTICATE", {"token": TokenCodec(node.app[SETTINGS]).issue(pair.doer.id)})
    assert again["userId"] == pair.doer.id
    other = await conn.call("AUTHENTICATE", {"token": pair.client.token})
    assert other["error"]["code"] == "forbidden"
    await conn.close()


async def test_bad_token_in_authenticate_event_disconnects(node: Node) -> None:
    conn = await sio_connect(node)
    ack = await conn.call("AUTHENTICATE", {"token": "nope"})
    assert ack["error"]["code"] == "unauthorized"
    error = await conn.expect("ERROR")
    assert error["code"] == "unauthorized"
    async with asyncio.timeout(5):
        await conn.disconnected.wait()


async def test_no_authentication_in_time_disconnects(make_node: NodeFactory) -> None:
    node = await make_node(ws_auth_timeout=1.0)
    conn = await sio_connect(node)
    error = await conn.expect("ERROR", within=5)
    assert error["code"] == "unauthorized"
    async with asyncio.timeout(5):
        await conn.disconnected.wait()


async def test_connections_are_sessions_of_the_hub(node: Node, pair: Pair) -> None:
    hub = node.app[HUB]
    conn = await sio_connect(node, pair.client)
    assert [(s.transport, s.user_id) for s in hub.sessions] == [("sio", pair.client.id)]
    await conn.close()
    await eventually(lambda: not hub.sessions)


async def test_bad_fresh_token_on_a_live_session_closes_it(node: Node, pair: Pair) -> None:
    conn = await sio_connect(node, pair.client)
    ack = await conn.call("AUTHENTICATE", {"token": "expired-or-forged"})
    assert ack["error"]["code"] == "unauthorized"
    async with asyncio.timeout(5):
        await conn.disconnected.wait()
    await eventually(lambda: not node.app[HUB].sessions)


async def test_shutdown_closes_socketio_sessions_so_clients_reconnect(node: Node, pair: Pair) -> None:
    conn = await sio_connect(node, pair.client)
    reasons: list[str] = []
    conn.client.on("disconnect", lambda reason=None: reasons.append(str(reason)))
    await node.app[HUB].shutdown()
    await eventually(lambda: bool(reasons))
    # An Engine.IO close, not a namespace disconnect: socket.io clients retry a "transport close".
    assert reasons[0] in ("transport close", "transport error"), reasons
    assert not node.app[HUB].sessions
    # Closed by the close itself, not cut when its grace ran out (the writer once waited on itself).
    aborts = node.app[METRICS].close_aborts.labels("sio")._value.get()
    assert aborts == 0, "the session's close was cut after its grace instead of finishing"
    refused = SioConn()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.client.connect(
            _url(node), auth={"token": pair.client.token}, transports=["websocket"], wait_timeout=5
        )


async def test_browser_origins_are_this_host_and_client_url(node: Node, pair: Pair) -> None:
    settings = node.app[SETTINGS]
    for origin, allowed in [(settings.client_url, True), (_url(node), True), ("https://evil.example", False)]:
        conn = SioConn()
        connect = conn.client.connect(
            _url(node), auth={"token": pair.client.token}, headers={"Origin": origin}, transports=["polling"]
        )
        if allowed:
            await connect
            await conn.expect("AUTHENTICATED")
            await conn.close()
        else:
            with pytest.raises(socketio.exceptions.ConnectionError):
                await connect
