"""/ws on the wire, with a raw socket client: the handshake through the front door and through the
aiohttp route, frames the stock clients never send (fragments, interleaved pings, protocol
violations), the close handshake, liveness, shutdown, and that nothing is left behind."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from typing import Any

import asyncpg
import orjson
import pytest

from hub.keys import HUB, WS_FRONT
from hub.websocket import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, accept_key
from tests.hub.conftest import Node, NodeFactory, Pair
from tests.hub.test_websocket_codec import client_frame


class Raw:
    """One TCP connection to a node, speaking HTTP/1.1 and WebSocket by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, node: Node, rcvbuf: int | None = None) -> Raw:
        """A connection to `node`; `rcvbuf` shrinks its receive buffer (a client slow to read)."""
        server = node.client.server
        reader, writer = await asyncio.open_connection(server.host, server.port)
        if rcvbuf is not None:
            writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        return cls(reader, writer)

    @classmethod
    async def session(cls, node: Node, token: str, rcvbuf: int | None = None) -> Raw:
        """A connection upgraded with `token` in the query, its AUTHENTICATED read."""
        raw = await cls.open(node, rcvbuf)
        await raw.upgrade(f"?token={token}")
        assert (await raw.event())["type"] == "AUTHENTICATED"
        return raw

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        """One HTTP response: status, headers (lower-case names), body (Content-Length only)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), 5) if length else b""
        return status, headers, body

    async def upgrade(
        self, query: str = "", key: str | None = None, *, byte_by_byte: bool = False
    ) -> dict[str, str]:
        key = key or base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws{query} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        ).encode()
        if byte_by_byte:
            for i in range(len(request)):
                await self.write(request[i : i + 1])
                await asyncio.sleep(0)
        else:
            await self.write(request)
        status, headers, _ = await self.response()
        assert status == 101, (status, headers)
        assert headers["sec-websocket-accept"] == accept_key(key)
        return headers

    async def send(self, opcode: int, payload: bytes, **kwargs: Any) -> None:
        await self.write(client_frame(opcode, payload, **kwargs))

    async def send_json(self, frame: dict[str, Any]) -> None:
        await self.send(OP_TEXT, orjson.dumps(frame))

    async def frame(self, within: float = 5.0) -> tuple[int, bytes]:
        """The next server frame (opcode, payload); server frames are final and unmasked."""
        async with asyncio.timeout(within):
            b0, b1 = await self.reader.readexactly(2)
            assert b0 & 0x80 and not b1 & 0x80
            size = b1 & 0x7F
            if size == 126:
                size = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            return b0 & 0x0F, await self.reader.readexactly(size)

    async def event(self, within: float = 5.0) -> dict[str, Any]:
        """The next text frame, as JSON (control frames are not expected here)."""
        opcode, payload = await self.frame(within)
        assert opcode == OP_TEXT, (opcode, payload)
        result: dict[str, Any] = orjson.loads(payload)
        return result

    async def close_code(self, within: float = 5.0) -> int:
        """Skip to the server's close frame; return its code."""
        while True:
            opcode, payload = await self.frame(within)
            if opcode == OP_CLOSE:
                return int(struct.unpack("!H", payload[:2])[0])

    async def eof(self, within: float = 5.0) -> bool:
        """True when the server closes the TCP connection within `within` (anything before it read)."""
        try:
            async with asyncio.timeout(within):
                while await self.reader.read(65536):
                    pass
            return True
        except TimeoutError:
            return False

    def abort(self) -> None:
        self.writer.transport.abort()


async def settled(node: Node, within: float = 5.0) -> None:
    """Wait until the node holds no connection, session, channel or aiohttp connection."""
    hub = node.app[HUB]
    front = node.app[WS_FRONT]
    runner = node.client.server.runner
    assert runner is not None
    server = runner.server
    assert server is not None

    def empty() -> bool:
        return not (front.connections or hub.sessions or hub.users or hub.orders or server.connections)

    async with asyncio.timeout(within):
        while not empty():  # noqa: ASYNC110 - the node's state, changed by its own tasks
            await asyncio.sleep(0.02)


async def test_handshake_through_the_door_negotiates_no_extension(node: Node, pair: Pair) -> None:
    raw = await Raw.open(node)
    headers = await raw.upgrade(f"?token={pair.client.token}", key="dGhlIHNhbXBsZSBub25jZQ==")
    assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert "sec-websocket-extensions" not in headers
    hello = await raw.event()
    assert hello["type"] == "AUTHENTICATED" and hello["data"]["userId"] == pair.client.id


async def test_a_head_arriving_byte_by_byte_still_upgrades(node: Node, pair: Pair) -> None:
    raw = await Raw.open(node)
    await raw.upgrade(byte_by_byte=True)
    await raw.send_json({"type": "AUTHENTICATE", "data": {"token": pair.doer.token}, "ref": "a"})
    hello = await raw.event()
    assert hello["type"] == "AUTHENTICATED" and hello["ref"] == "a"


async def test_fragments_and_interleaved_pings(node: Node, pair: Pair) -> None:
    raw = await Raw.session(node, pair.client.token)
    body = orjson.dumps({"type": "PING", "ref": "fragmented"})
    await raw.send(OP_TEXT, body[:5], fin=False)
    await raw.send(OP_PING, b"are you there")
    await raw.send(OP_CONTINUATION, body[5:9], fin=False)
    await raw.send(OP_CONTINUATION, body[9:])
    assert await raw.frame() == (OP_PONG, b"are you there")
    pong = await raw.event()
    assert pong == {"type": "PONG", "ref": "fragmented"}


async def test_frames_sent_in_one_burst_are_answered_in_order(make_node: NodeFactory, pair: Pair) -> None:
    node = await make_node(event_rate_per_s=10_000.0, event_burst=10_000)  # the burst is the point
    raw = await Raw.session(node, pair.client.token)
    # More than the inbox holds before the socket stops being read: reading pauses and resumes.
    await raw.write(
        b"".join(client_frame(OP_TEXT, orjson.dumps({"type": "PING", "ref": f"p{i}"})) for i in range(300))
    )
    refs = [(await raw.event())["ref"] for _ in range(300)]
    assert refs == [f"p{i}" for i in range(300)]


async def test_binary_frames_get_bad_request_and_the_connection_stays(node: Node, pair: Pair) -> None:
    raw = await Raw.session(node, pair.client.token)
    await raw.send(OP_BINARY, b'{"type": "PING"}')
    err = await raw.event()
    assert err["type"] == "ERROR" and err["data"]["code"] == "bad_request"
    await raw.send_json({"type": "PING", "ref": "still"})
    assert (await raw.event())["ref"] == "still"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (client_frame(OP_TEXT, b'{"type":"PING"}', mask=b""), 1002),
        (client_frame(OP_TEXT, b'{"type":"PING"}', rsv=0x40), 1002),
        (client_frame(OP_CONTINUATION, b"x"), 1002),
        (client_frame(OP_PING, b"x" * 126), 1002),
        (client_frame(0x3, b"x"), 1002),
        (client_frame(OP_TEXT, b'{"type": "PING", "ref": "\xff"}'), 1007),
        # The declared length alone is over the 64 KiB bound: refused without waiting for a payload.
        (bytes([0x81, 0xFF]) + struct.pack("!Q", 1 << 33) + b"mask", 1009),
    ],
    # Named, not by their bytes: the masks are random, and test ids must be the same in every
    # process of a parallel run (pytest-xdist collects in each).
    ids=[
        "unmasked",
        "rsv-bit",
        "lone-continuation",
        "long-control",
        "reserved-opcode",
        "bad-utf8",
        "too-long",
    ],
)
async def test_protocol_violations_close_with_their_code_and_leave_nothing(
    node: Node, pair: Pair, data: bytes, code: int
) -> None:
    raw = await Raw.session(node, pair.client.token)
    await raw.write(data)
    assert await raw.close_code() == code
    assert await raw.eof()
    await settled(node)


async def test_the_close_handshake_echoes_the_code_then_closes_the_socket(node: Node, pair: Pair) -> None:
    raw = await Raw.session(node, pair.client.token)
    await raw.send(OP_CLOSE, struct.pack("!H", 4000) + b"bye")
    assert await raw.close_code() == 4000
    assert await raw.eof()
    await settled(node)


async def test_a_server_close_waits_for_the_peer_then_cuts_a_silent_one(
    make_node: NodeFactory, pair: Pair
) -> None:
    node = await make_node(ws_auth_timeout=0.3)
    raw = await Raw.open(node)
    await raw.upgrade()
    err = await raw.event()
    assert err["type"] == "ERROR" and err["data"]["code"] == "unauthorized"
    assert await raw.close_code() == 4408
    # We never answer the close: the server cuts the socket after its grace (5 s), not before.
    assert not await raw.eof(within=1.0)
    assert await raw.eof(within=8.0)
    await settled(node)


async def test_requests_other_than_the_upgrade_go_to_aiohttp(node: Node) -> None:
    raw = await Raw.open(node)
    # Two pipelined requests, the first split before the door could tell where it goes.
    await raw.write(b"GET /he")
    await raw.write(b"althz HTTP/1.1\r\nHost: x\r\n\r\nGET /wsx HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body = await raw.response()
    assert status == 200 and orjson.loads(body) == {"status": "ok"}
    status, _, _ = await raw.response()
    assert status == 404
    raw = await Raw.open(node)
    await raw.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")  # not an upgrade
    status, headers, body = await raw.response()
    assert status == 400 and headers["content-type"].startswith("application/json")
    error = orjson.loads(body)["error"]
    assert "Upgrade: websocket" in error["message"]
    raw = await Raw.open(node)
    await raw.write(b"POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    status, _, _ = await raw.response()
    assert status == 405


async def test_an_upgrade_on_a_kept_alive_connection_is_handed_over(node: Node, pair: Pair) -> None:
    raw = await Raw.open(node)
    await raw.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, _ = await raw.response()
    assert status == 200
    await raw.upgrade(f"?token={pair.client.token}")  # the same socket: through the aiohttp route
    assert (await raw.event())["type"] == "AUTHENTICATED"
    await raw.send_json({"type": "SUBSCRIBE_CHAT", "data": {"orderId": pair.order_id}, "ref": "s"})
    assert (await raw.event())["type"] == "ACK"
    other = await node.connect(pair.doer, subscribe=pair.order_id)
    await other.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "over the handed-over socket"})
    message = await raw.event()
    assert message["type"] == "CHAT_MESSAGE" and message["data"]["text"] == "over the handed-over socket"
    await other.ws.close()
    await raw.send(OP_CLOSE, struct.pack("!H", 1000))
    assert await raw.close_code() == 1000
    assert await raw.eof()
    await settled(node)  # aiohttp's own record of the connection is gone too


async def test_a_silent_peer_is_pinged_then_cut(make_node: NodeFactory, pair: Pair) -> None:
    node = await make_node(ws_heartbeat_s=0.2)
    raw = await Raw.session(node, pair.client.token)
    assert await raw.frame(within=2.0) == (OP_PING, b"")
    assert await raw.eof(within=3.0)  # never answered
    await settled(node)


async def test_a_peer_answering_pings_stays(make_node: NodeFactory, pair: Pair) -> None:
    node = await make_node(ws_heartbeat_s=0.2)
    raw = await Raw.session(node, pair.client.token)
    for _ in range(4):  # four pings over about 8 intervals, each answered
        opcode, payload = await raw.frame(within=2.0)
        assert opcode == OP_PING
        await raw.send(OP_PONG, payload)
    await raw.send_json({"type": "PING", "ref": "alive"})
    assert (await raw.event())["ref"] == "alive"


async def test_shutdown_closes_every_connection_with_1001(node: Node, pair: Pair) -> None:
    waiting = await Raw.open(node)
    await waiting.upgrade()  # not authenticated yet
    live = await Raw.session(node, pair.client.token)
    await asyncio.sleep(0.05)
    closing = asyncio.create_task(node.client.server.close())
    assert await live.close_code() == 1001
    assert await waiting.close_code() == 1001
    for raw in (live, waiting):
        await raw.send(OP_CLOSE, struct.pack("!H", 1001))
        assert await raw.eof()
    await closing


async def test_nothing_is_left_after_many_kinds_of_endings(node: Node, pair: Pair) -> None:
    conns: list[Raw] = []
    for i in range(40):
        raw = await Raw.open(node)
        if i % 4 == 0:
            await raw.upgrade()  # never authenticates: aborted below
        else:
            await raw.upgrade(f"?token={(pair.client if i % 2 else pair.doer).token}")
            assert (await raw.event())["type"] == "AUTHENTICATED"
            await raw.send_json({"type": "SUBSCRIBE_CHAT", "data": {"orderId": pair.order_id}, "ref": "s"})
            if i % 4 == 1:
                await raw.write(client_frame(OP_TEXT, b"x", mask=b""))  # a protocol error mid-flight
            elif i % 4 == 2:
                await raw.send(OP_CLOSE, struct.pack("!H", 1000))
        conns.append(raw)
    for raw in conns:
        raw.abort()
    await settled(node)


async def test_a_message_followed_by_close_in_one_write_is_stored(
    node: Node, pair: Pair, pool: asyncpg.Pool
) -> None:
    raw = await Raw.session(node, pair.client.token)
    message = {"type": "CHAT_MESSAGE", "data": {"orderId": pair.order_id, "text": "bye"}, "ref": "m"}
    await raw.write(
        client_frame(OP_TEXT, orjson.dumps(message)) + client_frame(OP_CLOSE, struct.pack("!H", 1000))
    )
    ack = await raw.event()  # handled before the close is answered
    assert ack["type"] == "ACK" and ack["data"]["seq"] == 1
    assert await raw.close_code() == 1000
    assert await raw.eof()
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE order_id = $1", pair.order_id) == 1
    await settled(node)


async def test_a_message_received_whole_is_stored_even_if_the_socket_then_drops(
    node: Node, pair: Pair, pool: asyncpg.Pool
) -> None:
    raw = await Raw.session(node, pair.client.token)
    message = {
        "type": "CHAT_MESSAGE",
        "data": {"orderId": pair.order_id, "text": "sent, then gone"},
        "ref": "m",
    }
    await raw.write(client_frame(OP_TEXT, orjson.dumps(message)))
    raw.abort()
    await settled(node)
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE order_id = $1", pair.order_id) == 1


async def _stop_reading_until_paused(node: Node, raw: Raw) -> Any:
    """Send pings without reading the pongs until the server's transport pushes back; return the
    server's connection."""
    (conn,) = node.app[WS_FRONT].connections
    ping = client_frame(OP_PING, b"p" * 125)
    for _ in range(400):  # up to 52 MB of pongs if each were answered
        await raw.write(ping * 1000)
        if conn._paused:
            break
    assert conn._paused
    return conn


async def test_a_ping_flood_from_a_peer_that_never_reads_stays_bounded(node: Node, pair: Pair) -> None:
    raw = await Raw.open(node, rcvbuf=4096)
    await raw.upgrade(f"?token={pair.client.token}")
    conn = await _stop_reading_until_paused(node, raw)
    for _ in range(100):  # 12.5 MB more pings
        await raw.write(client_frame(OP_PING, b"p" * 125) * 1000)
    transport = conn._transport
    assert transport is not None
    # At most one pong waits beyond what the transport held when it pushed back.
    assert conn._paused and transport.get_write_buffer_size() < 1024 * 1024
    raw.abort()
    await settled(node)


async def test_a_client_close_is_answered_and_cut_if_the_client_stops_reading(
    make_node: NodeFactory, pair: Pair
) -> None:
    node = await make_node(ws_heartbeat_s=3600)
    raw = await Raw.open(node, rcvbuf=4096)
    await raw.upgrade(f"?token={pair.client.token}")
    conn = await _stop_reading_until_paused(node, raw)
    await raw.send(OP_CLOSE, struct.pack("!H", 1000))  # and still not reading: our answer is stuck
    await asyncio.sleep(0.5)
    assert conn in node.app[WS_FRONT].connections
    await settled(node, within=8.0)  # cut after the close grace (5 s), not left to the liveness sweep


async def test_a_refusal_after_many_frames_still_ends_cleanly(node: Node) -> None:
    raw = await Raw.open(node)
    await raw.upgrade()
    await raw.write(b"".join(client_frame(OP_TEXT, b'{"type": "PING"}') for _ in range(60)))
    assert await raw.close_code() == 4401  # more than 50 frames before AUTHENTICATE
    await raw.send(OP_CLOSE, struct.pack("!H", 4401))
    started = asyncio.get_running_loop().time()
    assert await raw.eof(within=3.0)  # our close answer was read: closed at once, no reset later
    assert asyncio.get_running_loop().time() - started < 2.0
    await settled(node)


async def test_a_login_during_shutdown_is_closed_1001(node: Node, pair: Pair) -> None:
    raw = await Raw.open(node)
    await raw.upgrade()
    node.app[HUB].accepting = False  # shutting down
    await raw.send_json({"type": "AUTHENTICATE", "data": {"token": pair.client.token}})
    assert await raw.close_code() == 1001
    assert not node.app[HUB].sessions


async def test_bytes_sent_with_an_upgrade_on_a_kept_alive_connection_are_kept(node: Node, pair: Pair) -> None:
    raw = await Raw.open(node)
    await raw.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await raw.response())[0] == 200
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws?token={pair.client.token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    await raw.write(request + client_frame(OP_PING, b"eager"))  # not waiting for the 101
    status, _, _ = await raw.response()
    assert status == 101
    seen = [await raw.frame(), await raw.frame()]
    assert (OP_PONG, b"eager") in seen


async def test_each_connection_end_is_logged_once(
    node: Node, pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="gigwire.ws")
    raw = await Raw.session(node, pair.client.token)
    await raw.send(OP_CLOSE, struct.pack("!H", 1000))
    assert await raw.close_code() == 1000
    await settled(node)
    ends = [r for r in caplog.records if r.getMessage() == "connection closed"]
    assert len(ends) == 1
    fields = ends[0].__dict__
    assert fields["userId"] == pair.client.id and fields["code"] == 1000


async def test_a_burst_of_bad_frames_from_a_peer_that_never_reads_ends_in_1013(
    make_node: NodeFactory, pair: Pair
) -> None:
    # Budgets lifted: the queue's bound is what this checks (tests/hub/test_budgets.py: the budgets).
    node = await make_node(ws_queue_max_frames=50, event_rate_per_s=10**6, event_burst=10**6)
    raw = await Raw.open(node, rcvbuf=4096)
    await raw.upgrade(f"?token={pair.client.token}")
    (conn,) = node.app[WS_FRONT].connections
    bad = client_frame(OP_TEXT, b"x")  # each answered with an ERROR of about 100 bytes
    await raw.write(bad * 100_000)  # 10 MB of answers if all were buffered
    # Answers wait in the bounded queue once the socket pushes back; past its bound: too slow.
    async with asyncio.timeout(30):
        while not conn.closing:  # noqa: ASYNC110 - the server's state; reading would drain it
            await asyncio.sleep(0.05)
    transport = conn._transport
    assert transport is None or transport.get_write_buffer_size() < 1024 * 1024
    assert conn._code == 1013
    raw.abort()
    await settled(node)
