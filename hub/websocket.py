"""RFC 6455 for the server side, without I/O: the opening handshake, an incremental reader of client
frames, and the server's frames. No extension is negotiated (no permessage-deflate: a deflate
context costs hundreds of KiB per connection, and chat frames are small).

The reader enforces what a server must: client frames are masked, no RSV bit is set, control frames
are final and at most 125 bytes, continuations follow a started message, a message stays within
the size bound (checked on each frame's declared length, before its payload is buffered), a text
message is valid UTF-8 and a close frame carries a valid code. A violation raises `WsError` with
the close code to send (1002, 1007 or 1009)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from urllib.parse import parse_qsl

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

PROTOCOL_ERROR = 1002
INVALID_DATA = 1007
TOO_BIG = 1009

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 8192
"""The longest request head the handshake reads (request line and headers)."""


class WsError(Exception):
    """A client broke the protocol; close the connection with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# -- opening handshake ----------------------------------------------------------------------------


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def upgrade_problem(method: str, headers: dict[str, str]) -> str | None:
    """Why a request is not a valid WebSocket upgrade (headers keyed in lower case), or None."""
    if method != "GET":
        return "a WebSocket upgrade is a GET"
    if "websocket" not in headers.get("upgrade", "").lower():
        return "expected 'Upgrade: websocket'"
    if "upgrade" not in [t.strip() for t in headers.get("connection", "").lower().split(",")]:
        return "expected 'Connection: Upgrade'"
    if headers.get("sec-websocket-version", "").strip() != "13":
        return "only WebSocket version 13 is supported"
    key = headers.get("sec-websocket-key", "").strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return "Sec-WebSocket-Key must be 16 bytes in base64"
    except (binascii.Error, ValueError):
        return "Sec-WebSocket-Key must be 16 bytes in base64"
    return None


class Upgrade:
    """A parsed request head that is a valid WebSocket upgrade."""

    __slots__ = ("key", "path", "query")

    def __init__(self, path: str, query: dict[str, str], key: str) -> None:
        self.path = path
        self.query = query
        self.key = key

    def response(self) -> bytes:
        """The 101 answer completing the handshake."""
        return (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(self.key).encode("ascii") + b"\r\n\r\n"
        )


def parse_upgrade(head: bytes) -> Upgrade | None:
    """The upgrade a complete HTTP/1.1 request head (up to and without the blank line) asks for, or
    None when it is not a well-formed, valid WebSocket upgrade (let the HTTP server answer it)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        return None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] != "HTTP/1.1":
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or not name.isascii():
            return None
        lower = name.lower()
        if lower in headers:  # a repeated header: combined as HTTP allows for lists
            headers[lower] += "," + value.strip()
        else:
            headers[lower] = value.strip()
    if "host" not in headers or upgrade_problem(parts[0], headers) is not None:
        return None
    path, _, query = parts[1].partition("?")
    try:
        params = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False, errors="strict"))
    except (UnicodeDecodeError, ValueError):
        return None
    return Upgrade(path, params, headers["sec-websocket-key"])


# -- frames ---------------------------------------------------------------------------------------


def frame(opcode: int, payload: bytes) -> bytes:
    """A complete, final, unmasked server frame."""
    size = len(payload)
    if size < 126:
        return bytes((0x80 | opcode, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, size) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, size) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame with `code` and a reason cut to fit a control frame."""
    return frame(OP_CLOSE, struct.pack("!H", code) + reason.encode("utf-8")[:120])


PING = frame(OP_PING, b"")


def unmask(mask: bytes, data: bytes) -> bytes:
    """XOR `data` with the repeating 4-byte `mask` (one big-integer XOR: C speed, any length)."""
    size = len(data)
    if size == 0:
        return b""
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(size, "little")


def _valid_close_code(code: int) -> bool:
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or (
        3000 <= code <= 4999
    )


class Reader:
    """Incremental parser of a client's frames. `feed` returns the complete messages and control
    frames in order, as (opcode, payload): text payloads as str, binary as bytes, close as
    (code, reason) decoded to a tuple, ping and pong as bytes. Raises WsError on a violation; the
    reader is then unusable."""

    __slots__ = ("_buffer", "_fragments", "_kind", "max_size")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buffer = b""
        self._kind = 0  # opcode of the message being continued, 0 when none
        self._fragments: list[bytes] | None = None

    def feed(self, data: bytes) -> list[tuple[int, object]]:
        buf = self._buffer + data if self._buffer else data
        out: list[tuple[int, object]] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            if b0 & 0x70:
                raise WsError(PROTOCOL_ERROR, "reserved bits set without an extension")
            if not b1 & 0x80:
                raise WsError(PROTOCOL_ERROR, "client frames must be masked")
            fin = b0 & 0x80
            opcode = b0 & 0x0F
            size = b1 & 0x7F
            start = pos + 6
            if size == 126:
                if end - pos < 4:
                    break
                size = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                start = pos + 8
            elif size == 127:
                if end - pos < 10:
                    break
                size = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 14
            if opcode >= 0x8:
                if not fin or size > 125:
                    raise WsError(PROTOCOL_ERROR, "control frames are final and at most 125 bytes")
                if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                    raise WsError(PROTOCOL_ERROR, f"unknown opcode {opcode}")
            elif opcode not in (OP_CONTINUATION, OP_TEXT, OP_BINARY):
                raise WsError(PROTOCOL_ERROR, f"unknown opcode {opcode}")
            elif opcode == OP_CONTINUATION:
                if not self._kind:
                    raise WsError(PROTOCOL_ERROR, "a continuation without a message to continue")
            elif self._kind:
                raise WsError(PROTOCOL_ERROR, "a new message inside a fragmented one")
            held = sum(map(len, self._fragments)) if self._fragments else 0
            if opcode < 0x8 and held + size > self.max_size:
                raise WsError(TOO_BIG, f"message over {self.max_size} bytes")
            if end - start < size:
                break
            payload = unmask(buf[start - 4 : start], buf[start : start + size])
            pos = start + size
            if opcode >= 0x8:
                out.append((opcode, _control(opcode, payload)))
            elif not fin:
                if opcode != OP_CONTINUATION:
                    self._kind = opcode
                    self._fragments = [payload]
                else:
                    assert self._fragments is not None
                    self._fragments.append(payload)
            else:
                if opcode == OP_CONTINUATION:
                    assert self._fragments is not None
                    self._fragments.append(payload)
                    opcode, payload = self._kind, b"".join(self._fragments)
                    self._kind, self._fragments = 0, None
                out.append((opcode, _text(payload) if opcode == OP_TEXT else payload))
        self._buffer = buf[pos:] if pos < end else b""
        return out


def _text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise WsError(INVALID_DATA, "text frames must be UTF-8") from None


def _control(opcode: int, payload: bytes) -> object:
    if opcode != OP_CLOSE:
        return payload
    if not payload:
        return (1005, "")  # no status code sent
    if len(payload) == 1:
        raise WsError(PROTOCOL_ERROR, "a close payload of one byte")
    code = int.from_bytes(payload[:2], "big")
    if not _valid_close_code(code):
        raise WsError(PROTOCOL_ERROR, f"close code {code} is not allowed")
    try:
        return (code, payload[2:].decode("utf-8"))
    except UnicodeDecodeError:
        raise WsError(INVALID_DATA, "close reasons must be UTF-8") from None
