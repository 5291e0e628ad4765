"""The web process's front door: every accepted TCP connection first meets a `Door`, which reads
the start of its first request. A WebSocket upgrade to /ws is served by the hub's WsFront straight
on the socket (no aiohttp request, handler task or parser is kept for the connection's life: most
of what an idle connection would otherwise cost); anything else, including an invalid upgrade, is
handed to aiohttp unchanged, bytes read so far included, and served as usual.

`Runner` is aiohttp's AppRunner with its sites accepting through the door; the web process
(`serve_app`) and the tests serve the app with it."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Callable
from typing import cast

from aiohttp import web

from hub import websocket
from hub.compat_aiohttp import GateRunner, hand_to_aiohttp
from hub.keys import WS_FRONT
from hub.lifecycle import CANCEL_SHARE, FINAL_SHARE, Stopped, run_bounded

_PREFIX = b"GET /ws"
_HEAD_END = b"\r\n\r\n"
_HEAD_TIMEOUT_S = 30.0  # a first request not complete by then goes to aiohttp, and its timeouts
SHUTDOWN_TIMEOUT_S = 15.0
"""The default bound on stopping the web process after SIGTERM (SHUTDOWN_TIMEOUT)."""


class Door(asyncio.Protocol):
    """One connection until its first request shows where it goes."""

    __slots__ = ("_app", "_buffer", "_server", "_timer", "_transport")

    def __init__(self, server: web.Server, app: web.Application) -> None:
        self._server = server
        self._app = app
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        tune_socket(transport)
        self._timer = asyncio.get_running_loop().call_later(_HEAD_TIMEOUT_S, self._hand_over)

    def data_received(self, data: bytes) -> None:
        searched = max(0, len(self._buffer) - 3)
        self._buffer += data
        buffer = self._buffer
        if buffer[: len(_PREFIX)] != _PREFIX[: len(buffer)]:
            self._hand_over()
            return
        if len(buffer) > len(_PREFIX) and buffer[len(_PREFIX)] not in b" ?":
            self._hand_over()  # /wsx, /ws/...: not ours
            return
        end = buffer.find(_HEAD_END, searched)
        if end < 0:
            if len(buffer) > websocket.MAX_HEAD:
                self._hand_over()
            return
        front = self._app.get(WS_FRONT)
        upgrade = websocket.parse_upgrade(bytes(buffer[:end]))
        if front is None or upgrade is None or upgrade.path != "/ws" or not front.accepting:
            self._hand_over()  # aiohttp answers it (400, 503, ...)
            return
        transport = self._transport
        assert transport is not None
        self._close_timer()
        self._transport = None
        front.accept(transport, upgrade, bytes(buffer[end + len(_HEAD_END) :]))

    def eof_received(self) -> bool | None:
        handler = self._hand_over()
        return handler.eof_received() if handler is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._close_timer()
        self._transport = None

    def _close_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _hand_over(self) -> asyncio.Protocol | None:
        """Give the connection to aiohttp with the bytes read so far."""
        self._close_timer()
        transport = self._transport
        if transport is None or transport.is_closing():
            return None
        self._transport = None
        buffer, self._buffer = bytes(self._buffer), bytearray()
        return hand_to_aiohttp(self._server, transport, buffer)


class Runner(GateRunner):
    """An AppRunner whose sites accept connections through the door."""

    def gate(self, server: web.Server) -> asyncio.Protocol:
        return Door(server, self.app)


def tune_socket(transport: asyncio.BaseTransport) -> None:
    """What aiohttp sets on its own connections: small frames sent at once (no Nagle delay), and
    TCP keepalive so the kernel notices a vanished peer."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


class ListenError(Exception):
    """The web process cannot listen where HOST and PORT say; str() is one line saying what to do."""


def listen_error(exc: OSError, host: str, port: int) -> ListenError:
    """The one-line ListenError for a failed bind of `host`:`port`."""
    if exc.errno == errno.EADDRINUSE:
        return ListenError(f"port {port} is in use on {host}; set PORT to another port")
    if exc.errno == errno.EACCES:
        return ListenError(f"port {port} on {host} needs privileges; set PORT to one above 1023")
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return ListenError(f"{host} is not an address of this machine; set HOST to one that is")
    return ListenError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); check HOST and PORT")


def check_port(host: str, port: int) -> None:
    """Raise ListenError unless `host`:`port` can be bound now, as the site will bind it (address
    reuse on, IPv6 sockets IPv6-only). The web process calls this before it starts its database, so
    a busy port ends it at once; the site's own bind is still checked (another process may win)."""
    try:
        found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _name, address in found:
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
    except OSError as exc:
        raise listen_error(exc, host, port) from None


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    handler_timeout: float,
    on_listening: Callable[[], None] | None,
    stop: asyncio.Event,
) -> None:
    runner = Runner(app, handle_signals=False, access_log=None, shutdown_timeout=handler_timeout)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            raise listen_error(exc, host, port) from None
        if on_listening is not None:
            on_listening()
        await stop.wait()  # SIGINT or SIGTERM (hub.lifecycle)
    finally:
        await runner.cleanup()


def serve_app(
    app: web.Application,
    host: str,
    port: int,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT_S,
    on_listening: Callable[[], None] | None = None,
) -> Stopped:
    """Serve `app` through the door until SIGINT or SIGTERM, then shut it down within
    `shutdown_timeout` seconds of the signal (hub.lifecycle: graceful, then cancel, then abandon).
    `on_listening` runs once the port is bound; a failed bind raises ListenError after the app's
    cleanup. Open requests get a third of the graceful share to finish."""
    graceful = (
        shutdown_timeout - min(CANCEL_SHARE, shutdown_timeout / 5) - min(FINAL_SHARE, shutdown_timeout / 10)
    )
    handler_timeout = max(0.1, graceful / 3)
    return run_bounded(
        lambda stop: _serve(app, host, port, handler_timeout, on_listening, stop), shutdown_timeout
    )
