"""The private library APIs gigwire relies on (hub/compat_aiohttp.py, hub/compat_socketio.py) are
still there: each check names what vanished, so an upgrade fails here, loudly, and not as a hang
or a silently lost byte in a wire test."""

from __future__ import annotations

import importlib.metadata
import inspect

import engineio
import engineio.packet
import pytest
import socketio
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from engineio.async_socket import AsyncSocket
from packaging.specifiers import SpecifierSet

from hub import compat_aiohttp, compat_socketio


def _params(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "requirement",
    [compat_aiohttp.CHECKED_RANGE, *compat_socketio.CHECKED_RANGE],
)
def test_installed_versions_are_the_checked_ones(requirement: str) -> None:
    name, _, spec = requirement.partition(">")
    installed = importlib.metadata.version(name)
    assert installed in SpecifierSet(">" + spec), (
        f"{name} {installed} is installed, but gigwire's private uses of it were checked for "
        f"{requirement} only: re-check hub/compat_*.py and tests/hub/test_compat.py, then the pin"
    )


def test_aiohttp_sites_take_their_protocol_factory_from_runner_server() -> None:
    assert isinstance(inspect.getattr_static(web.AppRunner, "server"), property), (
        "aiohttp: AppRunner.server is no longer a property; GateRunner (hub.door's Runner) overrides it"
    )
    for site in (web.TCPSite, web.UnixSite, web.SockSite):
        assert "self._runner.server" in inspect.getsource(site.start), (
            f"aiohttp: {site.__name__}.start no longer reads runner.server as its protocol factory; "
            "connections would bypass hub.door"
        )
    assert "__call__" in vars(web.Server), "aiohttp: web.Server() no longer makes a connection's handler"


def test_aiohttp_request_handler_holds_message_tail_and_takes_connection_lost() -> None:
    slots = [name for cls in RequestHandler.__mro__ for name in getattr(cls, "__slots__", ())]
    assert "_message_tail" in slots, (
        "aiohttp: RequestHandler._message_tail is gone; bytes sent right after a /ws upgrade that "
        "aiohttp routed would be lost (hub.compat_aiohttp.message_tail)"
    )
    assert _params(RequestHandler.connection_lost) == ["self", "exc"], (
        "aiohttp: RequestHandler.connection_lost(exc) changed (hub.compat_aiohttp.tell_lost)"
    )


def test_socketio_private_handlers_keep_their_signatures_and_callers() -> None:
    server = socketio.AsyncServer
    assert _params(server._handle_connect) == ["self", "eio_sid", "namespace", "data"], (
        "python-socketio: AsyncServer._handle_connect(eio_sid, namespace, data) changed (HookedServer)"
    )
    assert _params(server._handle_event) == ["self", "eio_sid", "namespace", "id", "data"], (
        "python-socketio: AsyncServer._handle_event(eio_sid, namespace, id, data) changed (HookedServer)"
    )
    dispatch = inspect.getsource(server._handle_eio_message)
    for call in ("self._handle_connect(", "self._handle_event("):
        assert call in dispatch, f"python-socketio: _handle_eio_message no longer calls {call}...)"
    for name in ("eio_sid_from_sid", "sid_from_eio_sid", "is_connected"):
        assert callable(getattr(socketio.AsyncManager, name, None)), (
            f"python-socketio: AsyncManager.{name} is gone (HookedServer's sid maps)"
        )


async def test_engineio_sockets_queue_and_packets_are_there() -> None:
    server = socketio.AsyncServer(async_mode="aiohttp")
    assert isinstance(getattr(server.eio, "sockets", None), dict), (
        "python-engineio: AsyncServer.sockets (eio_sid -> socket) is gone (HookedServer.eio_socket)"
    )
    socket = AsyncSocket(server.eio, "sid")
    for name in ("put_nowait", "qsize"):
        assert callable(getattr(socket.queue, name, None)), (
            f"python-engineio: AsyncSocket.queue.{name} is gone (hub.compat_socketio.enqueue/backlog)"
        )
    assert socket.closed is False, (
        "python-engineio: AsyncSocket.closed is gone (hub.compat_socketio.is_closed)"
    )
    assert {"wait", "abort"} <= set(_params(AsyncSocket.close)), (
        "python-engineio: AsyncSocket.close(wait=, abort=) changed (hub.compat_socketio.abort)"
    )
    packet = compat_socketio.message_packet('2["PING"]')
    assert packet.packet_type == engineio.packet.MESSAGE
    assert packet.encode() == '42["PING"]', "python-engineio: a MESSAGE packet no longer encodes as 4<data>"


def test_aiohttp_handler_construction_and_handle_error_are_there() -> None:
    assert _params(RequestHandler.handle_error) == ["self", "request", "status", "exc", "message"], (
        "aiohttp: RequestHandler.handle_error(request, status, exc, message) changed "
        "(hub.compat_aiohttp.GigwireRequestHandler)"
    )
    source = inspect.getsource(web.Server.__call__)
    assert "RequestHandler(self, loop=self._loop, **self._kwargs)" in source, (
        "aiohttp: web.Server() no longer builds its handler from _loop and _kwargs (make_handler)"
    )


def test_engineio_and_socketio_internals_the_guards_replace_are_there() -> None:
    assert "_engineio_server_class" in vars(socketio.AsyncServer), (
        "python-socketio: AsyncServer._engineio_server_class is gone (GuardedEngineIO)"
    )
    assert _params(socketio.AsyncServer._handle_eio_message) == ["self", "eio_sid", "data"], (
        "python-socketio: _handle_eio_message(eio_sid, data) changed (HookedServer's dispatch)"
    )
    assert "_binary_packet" in inspect.getsource(socketio.AsyncServer._handle_eio_message)
    assert "self.server._async['websocket']" in inspect.getsource(AsyncSocket._upgrade_websocket), (
        "python-engineio: the WebSocket wrapper is no longer taken from server._async (GuardedEngineIO)"
    )
    for name in ("service_task_event", "service_task_handle"):
        assert name in inspect.getsource(engineio.AsyncServer.shutdown), (
            f"python-engineio: AsyncServer.shutdown no longer uses {name} (GuardedEngineIO.shutdown)"
        )
    assert "upgraded" in inspect.getsource(AsyncSocket._websocket_handler)
