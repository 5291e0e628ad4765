"""RFC 6455 for the server side, without I/O: the opening handshake, an incremental reader of client
frames, and the server's frames. No extension is negotiated (no permessage-deflate: a deflate
context costs hundreds of KiB per connection, and chat frames are small).

The reader enforces what a server must: client frames are masked, no RSV bit is set, control frames
are final and at most 125 bytes, continuations follow a started message, a message stays within
the size bound (checked on each frame's declared length, before its payload is buffered) and in at
most MAX_FRAGMENTS frames, a text message is valid UTF-8 and a close frame carries a valid code. A
violation gives a `WsError` with the close code to send (1002, 1007 or 1009)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from urllib.parse import parse_qsl

from hub.codes import INVALID_DATA, PROTOCOL_ERROR, TOO_BIG

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

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
    if "websocket" not in [t.strip() for t in headers.get("upgrade", "").lower().split(",")]:
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
    params: dict[str, str] = {}
    try:
        for name, value in parse_qsl(query, keep_blank_values=True, errors="strict"):
            params.setdefault(name, value)  # a repeated parameter: the first counts, as in aiohttp
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
    """A close frame with `code` and a reason cut to fit a control frame (on a character boundary)."""
    cut = reason.encode("utf-8")[:120].decode("utf-8", "ignore").encode("utf-8")
    return frame(OP_CLOSE, struct.pack("!H", code) + cut)


PING = frame(OP_PING, b"")


def unmask(mask: bytes | bytearray, data: bytes | bytearray) -> bytes:
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


MAX_FRAGMENTS = 1024
"""The most frames one message may come in (a bound on the work per message, empty ones included)."""


class Reader:
    """Incremental parser of a client's frames. `feed` returns the complete messages and control
    frames in order, as (opcode, payload): text payloads as str, binary as bytes, close as
    (code, reason), ping and pong as bytes. On a violation it returns what came before it and sets
    `error` (the WsError to close with); after a close frame or an error it reads nothing more.
    Work is linear in the bytes fed, however they are cut."""

    __slots__ = ("_buffer", "_kind", "_message", "_pieces", "done", "error", "max_size")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buffer = bytearray()  # the start of a frame not complete yet
        self._kind = 0  # opcode of the message being continued, 0 when none
        self._message: bytearray | None = None
        self._pieces = 0
        self.done = False  # a close frame was read, or the stream broke
        self.error: WsError | None = None

    def feed(self, data: bytes) -> list[tuple[int, object]]:
        if self.done:
            return []
        buffer = self._buffer
        if buffer:
            buffer += data
            buf: bytes | bytearray = buffer
        else:
            buf = data
        out: list[tuple[int, object]] = []
        try:
            pos = self._parse(buf, out)
        except WsError as exc:
            self.error = exc
            self.done = True
            self._buffer = bytearray()
            self._message = None
            return out
        if buf is buffer:
            del buffer[:pos]
        elif pos < len(buf):
            self._buffer = bytearray(buf[pos:])
        return out

    def _parse(self, buf: bytes | bytearray, out: list[tuple[int, object]]) -> int:
        """Parse whole frames from `buf` into `out`; return how many bytes were used."""
        pos = 0
        end = len(buf)
        while end - pos >= 2 and not self.done:
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
                if size >> 63:
                    raise WsError(PROTOCOL_ERROR, "a 64-bit length with its top bit set")
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
            if opcode < 0x8:
                held = len(self._message) if self._message is not None else 0
                if held + size > self.max_size:
                    raise WsError(TOO_BIG, f"message over {self.max_size} bytes")
                if self._pieces >= MAX_FRAGMENTS:
                    raise WsError(TOO_BIG, f"message in more than {MAX_FRAGMENTS} frames")
            if end - start < size:
                break
            payload = unmask(buf[start - 4 : start], buf[start : start + size])
            pos = start + size
            if opcode >= 0x8:
                out.append((opcode, _control(opcode, payload)))
                if opcode == OP_CLOSE:
                    self.done = True
            elif not fin:
                if opcode != OP_CONTINUATION:
                    self._kind = opcode
                    self._message = bytearray(payload)
                else:
                    assert self._message is not None
                    self._message += payload
                self._pieces += 1
            else:
                if opcode == OP_CONTINUATION:
                    assert self._message is not None
                    self._message += payload
                    opcode, payload = self._kind, bytes(self._message)
                    self._kind, self._message, self._pieces = 0, None, 0
                out.append((opcode, _text(payload) if opcode == OP_TEXT else payload))
        return pos


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
