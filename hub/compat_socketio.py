"""Every place gigwire relies on python-socketio or python-engineio beyond their documented API, in
one module.

Checked against python-socketio 5.18 (5.18.1) and python-engineio 4.15 (4.15.1); pyproject.toml
pins `python-socketio>=5.18,<5.19` and `python-engineio>=4.15,<4.16` to that range.
tests/hub/test_compat.py fails loudly when one of these goes away; check them again before widening
the pins.

- `AsyncServer._handle_connect(eio_sid, namespace, data)`: extended so a session starts only once
  the client holds its CONNECT (`HookedServer.connected`).
- `AsyncServer._handle_event(eio_sid, namespace, id, data)`: replaced so one connection's events
  run one at a time, in order, through the session flow, acks included (`HookedServer.event`).
- `server.manager.eio_sid_from_sid`, `sid_from_eio_sid`, `is_connected`: the manager's sid maps.
- `server.eio.sockets[eio_sid]` and the socket's `queue` (an asyncio.Queue its writer drains;
  None ends it), `closed` and `close(wait=, abort=)`: frames go straight into that queue, once
  encoded for every recipient, instead of through `socket.send`.
- `engineio.packet.Packet(MESSAGE, data=)`: a packet built once per frame; Engine.IO caches its
  encoding."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import socketio
from engineio.packet import MESSAGE, Packet

__all__ = [
    "CHECKED_RANGE",
    "HookedServer",
    "Packet",
    "abort",
    "backlog",
    "enqueue",
    "is_closed",
    "message_packet",
]

CHECKED_RANGE = ("python-socketio>=5.18,<5.19", "python-engineio>=4.15,<4.16")
"""The versions the private uses below were checked against (pinned in pyproject.toml)."""


def message_packet(text: str) -> Packet:
    """An Engine.IO MESSAGE packet carrying the Socket.IO packet `text`."""
    return Packet(MESSAGE, data=text)


class HookedServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's AsyncServer with its two private handlers turned into hooks."""

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        await super()._handle_connect(eio_sid, namespace, data)
        await self.connected(eio_sid, namespace or "/")

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        await self.event(eio_sid, namespace or "/", id, data)

    async def connected(self, eio_sid: str, namespace: str) -> None:
        """After the client was sent its CONNECT (or CONNECT_ERROR) for `namespace`."""

    async def event(self, eio_sid: str, namespace: str, ack_id: int | None, data: Any) -> None:
        """A client event `data` ([name, args...]); `ack_id` when the client asked for an ack."""

    def eio_sid_of(self, sid: str, namespace: str) -> str:
        eio_sid: str = self.manager.eio_sid_from_sid(sid, namespace)
        return eio_sid

    def sid_of(self, eio_sid: str, namespace: str) -> str | None:
        sid: str | None = self.manager.sid_from_eio_sid(eio_sid, namespace)
        return sid

    def is_connected(self, sid: str, namespace: str) -> bool:
        return bool(self.manager.is_connected(sid, namespace))

    def eio_socket(self, eio_sid: str) -> Any | None:
        """The Engine.IO socket of `eio_sid`, None once it is gone."""
        return self.eio.sockets.get(eio_sid)


def enqueue(socket: Any, packet: Packet) -> None:
    """Put `packet` straight into the Engine.IO socket's outgoing queue."""
    socket.queue.put_nowait(packet)


def backlog(socket: Any) -> int:
    """Packets waiting in the Engine.IO socket's outgoing queue."""
    size: int = socket.queue.qsize()
    return size


def is_closed(socket: Any) -> bool:
    return bool(socket.closed)


def abort(socket: Any) -> Coroutine[Any, Any, None]:
    """End the socket's writer at once (which closes its WebSocket) and give the close to run."""
    socket.queue.put_nowait(None)
    coro: Coroutine[Any, Any, None] = socket.close(wait=False, abort=True)
    return coro
