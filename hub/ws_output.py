"""The outgoing side of a /ws connection (hub/ws_conn.py builds on it): frames gathered for one
write per loop iteration, the bounded queue while the transport pushes back, and the close frame
once the queue is written."""

from __future__ import annotations

import asyncio
import enum
from collections import deque

from hub import websocket
from hub.codes import NORMAL
from hub.frame import Frame
from hub.session import Session

_OUT_MAX = 64 * 1024  # bytes gathered for one write; past it frames wait in the bounded queue


def ws_wire(frame: Frame) -> bytes:
    """The complete unmasked WebSocket text frame (RFC 6455 5.2) carrying `frame.data`."""
    return websocket.frame(websocket.OP_TEXT, frame.data)


class State(enum.IntEnum):
    """A connection's way from open to closed; it only moves forward."""

    OPEN = 0  # reading; client frames are handled
    ENDING = 1  # input ended (the client's close, or a violation): frames received are handled first
    CLOSING = 2  # a close started: frames not yet handled are dropped; queued ones, then the close go out
    CLOSE_SENT = 3  # the close frame is written: the client's close frame or EOF ends the connection
    CLOSED = 4  # the transport is lost


# The hot path (`push`, once per delivered frame) compares with a module constant: looking a member
# up on the enum class costs several times the comparison (bench/README.md, the issue-11 figures).
_CLOSING = State.CLOSING


class WsOutput(Session):
    """A session's writing side over one WebSocket: never awaits, never blocks on a slow peer. The
    connection (WsConnection) sets these slots up and drives the reading side."""

    __slots__ = (
        "_code",
        "_out",
        "_paused",
        "_pong",
        "_queue",
        "_queued_bytes",
        "_reader",
        "_reason",
        "_state",
        "_transport",
    )

    _state: State
    _code: int | None
    _reason: str
    _transport: asyncio.Transport | None
    _reader: websocket.Reader | None
    _out: bytearray | None
    _queue: deque[bytes] | None
    _queued_bytes: int
    _paused: bool
    _pong: bytes | None

    def flush(self) -> None:
        """Write the bytes gathered in this loop iteration, then what waits in the queue."""
        out = self._out
        if out is not None:
            self._out = None
            if self._transport is not None and self._state is not State.CLOSED:
                self._transport.write(out)
        if self._queue and not self._paused:
            self._drain()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._pong is not None and self._transport is not None:
            pong, self._pong = self._pong, None
            self._transport.write(websocket.frame(websocket.OP_PONG, pong))
        self._drain()

    def _drain(self) -> None:
        """Write queued frames, up to 64 KiB a write, until the transport pushes back; once the
        queue is empty, the close frame of a close waiting for it."""
        queue = self._queue
        transport = self._transport
        if transport is None or self._state is State.CLOSED:
            return
        while queue and not self._paused:
            size = 0
            chunks: list[bytes] = []
            while queue and size < _OUT_MAX:
                chunk = queue.popleft()
                chunks.append(chunk)
                size += len(chunk)
            self._queued_bytes -= size
            transport.write(b"".join(chunks))
        if not queue:
            self._queue = None
            if self._state is State.CLOSING:
                self._send_close()

    def _send_close(self) -> None:
        """Write what is gathered, then the close frame. With input ended the socket is closed
        now; otherwise the client's close frame closes it."""
        self.flush()
        if self._state is not State.CLOSING:
            return
        self._state = State.CLOSE_SENT
        if self._transport is not None:
            code = self._code if self._code is not None else NORMAL
            self._transport.write(websocket.close_frame(code, self._reason))
            if self._reader is None:
                self._transport.close()
