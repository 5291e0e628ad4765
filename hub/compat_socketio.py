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
  encoding.
- `AsyncServer._handle_eio_message(eio_sid, data)`: replaced by the same dispatch with a Socket.IO
  packet that cannot be decoded (bad JSON, integers over 100 digits, unknown types) answered as a
  client fault: an EVENT asking for an ack gets a `bad_request` error ack, nothing is logged at ERROR.
- `AsyncServer._engineio_server_class()`: answers `GuardedEngineIO`, whose `disconnect` does not
  wait for a polling socket's queue (Engine.IO waits for the client's next GET, forever), whose
  `shutdown` waits for the service task at most FLUSH_S (it swallows cancellation), and whose
  WebSocket wrapper (`_async["websocket"]`, the aiohttp driver's `WebSocket`) ends a connection that
  sends a packet Engine.IO cannot decode (it would raise out of the handler and leave its writer).
  Its `end` closes a socket through `socket.close(wait=False, abort=True)` and ends its writer with a
  None in its queue, so a WebSocket closes without Engine.IO's CLOSE packet (clients reconnect)."""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

import engineio
import socketio
from engineio.async_drivers.aiohttp import WebSocket
from engineio.packet import MESSAGE, Packet
from socketio import packet as sio_packet

from hub.logs import client_fault

__all__ = [
    "CHECKED_RANGE",
    "FLUSH_S",
    "GuardedEngineIO",
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


log = logging.getLogger("gigwire.sio")

FLUSH_S = 2.0
"""How long Engine.IO's shutdown waits for its service task, and for its WebSockets to close."""
_EIO_TYPES = frozenset("0123456")


def message_packet(text: str) -> Packet:
    """An Engine.IO MESSAGE packet carrying the Socket.IO packet `text`."""
    return Packet(MESSAGE, data=text)


class _GuardedWebSocket(WebSocket):  # type: ignore[misc]
    """The aiohttp driver's WebSocket wrapper, refusing what Engine.IO's packet decoder would raise
    on: the handler then ends the connection cleanly (its receive loop breaks on OSError)."""

    async def wait(self) -> Any:
        data = await super().wait()
        if isinstance(data, str) and not _decodable(data):
            client_fault(log, "malformed Engine.IO packet: connection closed", packet=data[:40])
            raise OSError("malformed Engine.IO packet")
        return data


def _decodable(text: str) -> bool:
    """Whether engineio.packet.Packet decodes `text` (a known type digit, or "b" and base64)."""
    if not text:
        return False
    if text[0] == "b":
        try:
            binascii.a2b_base64(text[1:], strict_mode=True)
        except (binascii.Error, ValueError):
            return False
        return True
    return text[0] in _EIO_TYPES


class GuardedEngineIO(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's AsyncServer: polling sockets close without waiting on their client, the
    shutdown is bounded, and a WebSocket sending what Engine.IO cannot decode is closed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        driver: dict[str, Any] = vars(self)["_async"]
        self._async = {**driver, "websocket": _GuardedWebSocket}
        # Engine.IO adds a handler of its own (plain text, tracebacks): records go to the root's only.
        self.logger.handlers.clear()

    async def disconnect(self, sid: str | None = None) -> None:
        """As Engine.IO's, but a polling socket is closed without waiting for its queue: Engine.IO
        waits for the client's next GET, which a client that stopped polling never sends (a POST
        carrying an unknown packet type hung forever on that). A WebSocket's queue drains itself."""
        for key in list(self.sockets) if sid is None else [sid]:
            socket = self.sockets.get(key)
            if socket is not None and not socket.upgraded:
                await socket.close(wait=False, reason=self.reason.SERVER_DISCONNECT)
                self.sockets.pop(key, None)
        if sid is None:
            if self.sockets:  # bounded without cancelling: engineio's handlers swallow cancellation
                closing = asyncio.ensure_future(super().disconnect())
                await asyncio.wait({closing}, timeout=FLUSH_S)
        elif sid in self.sockets:
            await super().disconnect(sid)

    async def end(self, sid: str) -> None:
        """Close `sid` so that its client comes back. A WebSocket is closed after the packets already
        queued for it, without Engine.IO's CLOSE packet, as the reference server does: a client told
        CLOSE takes it as "server disconnect" (python-socketio then does not reconnect), a WebSocket
        that just closes is a "transport close", which every client retries. A polling socket gets the
        CLOSE packet, which answers its client's pending GET (`disconnect` above)."""
        socket = self.sockets.get(sid)
        if socket is None:
            return
        if not socket.upgraded:
            await self.disconnect(sid)
            return
        # Runs the disconnect handlers and marks the socket closed; the None ends its writer, which
        # sends what is queued ahead of it and then closes the WebSocket.
        await socket.close(wait=False, abort=True, reason=self.reason.SERVER_DISCONNECT)
        socket.queue.put_nowait(None)

    async def shutdown(self) -> None:
        """Stop the service task (waiting at most FLUSH_S), then close every socket."""
        handle = getattr(self, "service_task_handle", None)
        if self.service_task_event is not None:
            self.service_task_event.set()
        if isinstance(handle, asyncio.Future) and not handle.done():
            done, _ = await asyncio.wait({handle}, timeout=FLUSH_S)
            if not done:
                handle.cancel()  # it may swallow this: the process's shutdown bound covers it
        self.service_task_handle = None
        await self.disconnect()


class HookedServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's AsyncServer with its two private handlers turned into hooks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger.handlers.clear()  # as GuardedEngineIO: the root's handler only

    def _engineio_server_class(self) -> type[GuardedEngineIO]:
        return GuardedEngineIO

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if eio_sid in self._binary_packet or not isinstance(data, str):
            try:
                await super()._handle_eio_message(eio_sid, data)
            except (ValueError, TypeError) as exc:
                self._binary_packet.pop(eio_sid, None)
                client_fault(
                    log, "undecodable Socket.IO packet ignored", error=f"{type(exc).__name__}: {exc}"
                )
            return
        try:
            pkt = self.packet_class(encoded_packet=data)
        except (ValueError, TypeError, RecursionError) as exc:
            await self._undecodable(eio_sid, data, exc)
            return
        kind = pkt.packet_type
        if kind == sio_packet.CONNECT:
            await self._handle_connect(eio_sid, pkt.namespace, pkt.data)
        elif kind == sio_packet.DISCONNECT:
            await self._handle_disconnect(eio_sid, pkt.namespace, self.reason.CLIENT_DISCONNECT)
        elif kind == sio_packet.EVENT:
            await self._handle_event(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif kind == sio_packet.ACK:
            await self._handle_ack(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif kind in (sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK) and self.manager.sid_from_eio_sid(
            eio_sid, pkt.namespace or "/"
        ):
            self._binary_packet[eio_sid] = pkt
        else:
            client_fault(log, "unexpected Socket.IO packet ignored", packet=data[:40])

    async def _undecodable(self, eio_sid: str, data: str, exc: BaseException) -> None:
        """A Socket.IO packet whose data cannot be decoded: an EVENT asking for an ack is handed on
        with no data (the event hook refuses it as `bad_request`), anything else is dropped."""
        client_fault(log, "undecodable Socket.IO packet", error=f"{type(exc).__name__}: {str(exc)[:120]}")
        address = event_address(data)
        if address is not None and address[1] is not None:
            await self._handle_event(eio_sid, address[0], address[1], None)

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        await super()._handle_connect(eio_sid, namespace, data)
        await self.connected(eio_sid, namespace or "/")

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        await self.event(eio_sid, namespace or "/", id, data)

    async def stop_engineio(self) -> None:
        """On shutdown: stop Engine.IO's service task and close every Engine.IO socket, bounded."""
        with contextlib.suppress(Exception):
            await self.eio.shutdown()

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


def event_address(text: str) -> tuple[str | None, int | None] | None:
    """The namespace and ack id of a Socket.IO EVENT packet `text` whose data may not decode (the
    header as socketio.packet.Packet.decode reads it), None when it is not an EVENT."""
    if text[:1] != str(sio_packet.EVENT):
        return None
    rest = text[1:]
    namespace = None
    if rest[:1] == "/":
        sep = rest.find(",")
        namespace, rest = (rest, "") if sep < 0 else (rest[:sep], rest[sep + 1 :])
        namespace = namespace.split("?", 1)[0]
    digits = 0
    while digits < len(rest) and digits < 100 and rest[digits].isdigit():
        digits += 1
    if digits == 0 or (digits < len(rest) and rest[digits].isdigit()):
        return namespace, None
    return namespace, int(rest[:digits])


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
