"""hub.websocket without I/O: the handshake and the client-frame reader against RFC 6455."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub import websocket
from hub.websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Reader,
    WsError,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example


def client_frame(
    opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, mask: bytes | None = None
) -> bytes:
    """A frame as a client sends it: masked (unless mask=b"")."""
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    size = len(payload)
    masked = 0x80 if mask != b"" else 0
    if size < 126:
        head += bytes([masked | size])
    elif size < 65536:
        head += bytes([masked | 126]) + struct.pack("!H", size)
    else:
        head += bytes([masked | 127]) + struct.pack("!Q", size)
    if mask == b"":
        return head + payload
    key = mask if mask is not None else os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def test_accept_key_is_the_rfc_example() -> None:
    assert websocket.accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def head(*lines: str, request: str = "GET /ws?token=abc&x=1 HTTP/1.1") -> bytes:
    return "\r\n".join([request, *lines]).encode("latin-1")


GOOD = (
    "Host: example.com",
    "Upgrade: websocket",
    "Connection: keep-alive, Upgrade",
    f"Sec-WebSocket-Key: {KEY}",
    "Sec-WebSocket-Version: 13",
)


def test_parse_upgrade_reads_path_query_and_key() -> None:
    upgrade = websocket.parse_upgrade(head(*GOOD))
    assert upgrade is not None
    assert upgrade.path == "/ws" and upgrade.query == {"token": "abc", "x": "1"}
    again = websocket.parse_upgrade(head(*GOOD, request="GET /ws?token=first&token=second HTTP/1.1"))
    assert again is not None and again.query == {"token": "first"}
    response = upgrade.response()
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in response
    assert response.endswith(b"\r\n\r\n")
    assert b"Sec-WebSocket-Extensions" not in response  # nothing negotiated, whatever was offered


@pytest.mark.parametrize(
    "raw",
    [
        head(*[h for h in GOOD if not h.startswith("Host")]),
        head(*[h for h in GOOD if not h.startswith("Upgrade")]),
        head(*[h for h in GOOD if not h.startswith("Connection")], "Connection: keep-alive"),
        head(*[h for h in GOOD if not h.startswith("Sec-WebSocket-Version")], "Sec-WebSocket-Version: 8"),
        head(*[h for h in GOOD if not h.startswith("Sec-WebSocket-Key")], "Sec-WebSocket-Key: c2hvcnQ="),
        head(*[h for h in GOOD if not h.startswith("Sec-WebSocket-Key")]),
        head(*GOOD, request="POST /ws HTTP/1.1"),
        head(*GOOD, request="GET /ws HTTP/1.0"),
        head(*GOOD, request="GET /ws"),
        head(*GOOD, " Folded: header"),
        head(*GOOD, "no colon here"),
        head(*GOOD, request="GET /ws?token=%ff HTTP/1.1"),
        head(*[h for h in GOOD if not h.startswith("Upgrade")], "Upgrade: notwebsocket"),
    ],
)
def test_parse_upgrade_refuses_what_is_not_a_valid_upgrade(raw: bytes) -> None:
    assert websocket.parse_upgrade(raw) is None


def test_reader_unmasks_text_and_binary_in_any_chunking() -> None:
    data = client_frame(OP_TEXT, "héllo".encode()) + client_frame(OP_BINARY, b"\x00\x01" * 200)
    for cut in range(len(data) + 1):
        reader = Reader(65536)
        got = reader.feed(data[:cut]) + reader.feed(data[cut:])
        assert got == [(OP_TEXT, "héllo"), (OP_BINARY, b"\x00\x01" * 200)]


def test_reader_joins_fragments_around_control_frames() -> None:
    reader = Reader(65536)
    data = (
        client_frame(OP_TEXT, b"ab", fin=False)
        + client_frame(OP_PING, b"p")
        + client_frame(OP_CONTINUATION, b"cd", fin=False)
        + client_frame(OP_CONTINUATION, b"ef")
        + client_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye")
    )
    assert reader.feed(data) == [(OP_PING, b"p"), (OP_TEXT, "abcdef"), (OP_CLOSE, (1000, "bye"))]


def test_an_empty_close_reads_as_1005() -> None:
    assert Reader(10).feed(client_frame(OP_CLOSE, b"")) == [(OP_CLOSE, (1005, ""))]


def test_large_frames_use_extended_lengths() -> None:
    for size in (125, 126, 65535, 65536, 70000):
        payload = os.urandom(size)
        assert Reader(1 << 20).feed(client_frame(OP_BINARY, payload)) == [(OP_BINARY, payload)]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (client_frame(OP_TEXT, b"x", mask=b""), 1002),
        (client_frame(OP_TEXT, b"x", rsv=0x40), 1002),
        (client_frame(OP_CONTINUATION, b"x"), 1002),
        (client_frame(OP_TEXT, b"a", fin=False) + client_frame(OP_TEXT, b"b"), 1002),
        (client_frame(OP_PING, b"x" * 126), 1002),
        (client_frame(OP_PING, b"x", fin=False), 1002),
        (client_frame(0x3, b"x"), 1002),
        (client_frame(0xB, b"x"), 1002),
        (client_frame(OP_CLOSE, b"\x03"), 1002),
        (client_frame(OP_CLOSE, struct.pack("!H", 999)), 1002),
        (client_frame(OP_CLOSE, struct.pack("!H", 1005)), 1002),
        (client_frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007),
        (client_frame(OP_TEXT, b"\xff\xfe"), 1007),
        (client_frame(OP_TEXT, b"\xe2\x82", fin=False) + client_frame(OP_CONTINUATION, b"\xff"), 1007),
        (client_frame(OP_TEXT, b"x" * 1025), 1009),
        (client_frame(OP_TEXT, b"x" * 600, fin=False) + client_frame(OP_CONTINUATION, b"x" * 600), 1009),
    ],
    ids=lambda value: None if isinstance(value, int) else f"frames-{len(value)}B",  # masks are random
)
def test_reader_refuses_violations_with_their_close_code(data: bytes, code: int) -> None:
    reader = Reader(1024)
    reader.feed(data)
    assert isinstance(reader.error, WsError) and reader.error.code == code
    assert reader.feed(client_frame(OP_TEXT, b"after")) == []  # nothing more is read


def test_an_oversized_frame_is_refused_from_its_header_alone() -> None:
    header = bytes([0x80 | OP_TEXT, 0x80 | 127]) + struct.pack("!Q", 1 << 40) + b"mask"
    reader = Reader(65536)
    assert reader.feed(header) == []  # no payload sent, nothing buffered: refused at once
    assert reader.error is not None and reader.error.code == 1009


def test_a_length_with_its_top_bit_set_is_a_protocol_error() -> None:
    reader = Reader(65536)
    reader.feed(bytes([0x80 | OP_TEXT, 0x80 | 127]) + struct.pack("!Q", 1 << 63) + b"mask")
    assert reader.error is not None and reader.error.code == 1002


def test_messages_before_a_violation_are_returned() -> None:
    reader = Reader(1024)
    got = reader.feed(client_frame(OP_TEXT, b"first") + client_frame(OP_TEXT, b"x", mask=b""))
    assert got == [(OP_TEXT, "first")]
    assert reader.error is not None and reader.error.code == 1002


def test_nothing_is_read_after_a_close_frame() -> None:
    reader = Reader(1024)
    got = reader.feed(client_frame(OP_CLOSE, struct.pack("!H", 1000)) + b"\xff\xff garbage")
    assert got == [(OP_CLOSE, (1000, ""))] and reader.error is None and reader.done


def test_many_fragments_cost_linear_work_and_are_bounded() -> None:
    # Empty continuations add nothing to a message's size; their number is what is bounded.
    data = client_frame(OP_TEXT, b"a", fin=False) + client_frame(OP_CONTINUATION, b"", fin=False) * 100_000
    reader = Reader(65536)
    assert reader.feed(data) == []
    assert reader.error is not None and reader.error.code == 1009
    ok = client_frame(OP_TEXT, b"a", fin=False) + client_frame(OP_CONTINUATION, b"b", fin=False) * 1000
    reader = Reader(65536)
    assert reader.feed(ok + client_frame(OP_CONTINUATION, b"!")) == [(OP_TEXT, "a" + "b" * 1000 + "!")]


def test_a_frame_fed_one_byte_at_a_time() -> None:
    payload = os.urandom(65536)
    data = client_frame(OP_BINARY, payload)
    reader = Reader(1 << 20)
    got: list[tuple[int, object]] = []
    for i in range(len(data)):
        got += reader.feed(data[i : i + 1])
    assert got == [(OP_BINARY, payload)]


def test_server_frames_carry_the_payload_unmasked() -> None:
    for size in (0, 125, 126, 65535, 65536):
        payload = b"y" * size
        frame = websocket.frame(OP_PONG, payload)
        assert frame[0] == 0x80 | OP_PONG and not frame[1] & 0x80
        assert frame.endswith(payload) and len(frame) - size in (2, 4, 10)
    assert websocket.close_frame(1013, "é" * 100)[:4] == bytes([0x88, 122, 0x03, 0xF5])
    assert websocket.close_frame(1000, "x" + "é" * 100)[:2] == bytes([0x88, 2 + 119])  # no half character


messages = st.lists(
    st.tuples(
        st.sampled_from([OP_TEXT, OP_BINARY]),
        st.text(max_size=300),
        st.lists(st.integers(min_value=1, max_value=40), max_size=4),  # fragment cut points
        st.booleans(),  # a ping inside the message
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(messages, st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=20))
def test_reader_returns_the_same_messages_however_they_are_cut(
    sent: list[tuple[int, str, list[int], bool]], chunks: list[int]
) -> None:
    stream = b""
    expected: list[tuple[int, object]] = []
    for opcode, text, cuts, ping in sent:
        payload = text.encode()
        pieces: list[bytes] = []
        start = 0
        for cut in sorted(set(cuts)):
            if start < cut < len(payload):
                pieces.append(payload[start:cut])
                start = cut
        pieces.append(payload[start:])
        for i, piece in enumerate(pieces):
            stream += client_frame(opcode if i == 0 else OP_CONTINUATION, piece, fin=i == len(pieces) - 1)
            if ping and i == 0 and len(pieces) > 1:
                stream += client_frame(OP_PING, b"in between")
                expected.append((OP_PING, b"in between"))
        expected.append((opcode, text if opcode == OP_TEXT else payload))
    reader = Reader(65536)
    got: list[tuple[int, object]] = []
    pos = 0
    turn = 0
    while pos < len(stream):
        size = chunks[turn % len(chunks)]
        got += reader.feed(stream[pos : pos + size])
        pos += size
        turn += 1
    assert got == expected
