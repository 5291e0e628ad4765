"""Every place gigwire relies on aiohttp beyond its documented API, in one module.

Checked against aiohttp 3.14 (3.14.5); pyproject.toml pins `aiohttp>=3.14,<3.15` to that range.
tests/hub/test_compat.py fails loudly when one of these goes away; check them again before widening
the pin.

- `AppRunner.server`: the sites read it (BaseSite.start) as the protocol factory they pass to
  `loop.create_server`; `GateRunner` answers a wrapper so each connection meets hub.door first.
- `web.Server()` makes one connection's `RequestHandler`; the door hands a connection to it with
  `transport.set_protocol` and replays the bytes it read (`hand_to_aiohttp`).
- `RequestHandler._message_tail`: bytes that followed a request's head on the socket, held by
  aiohttp's protocol; a /ws upgrade that aiohttp routed takes them over (`message_tail`).
- `RequestHandler.connection_lost`: a /ws connection taken over from aiohttp tells aiohttp's
  protocol of the loss, so the request handler waiting on it ends (`tell_lost`).
- `web.Server._loop` and `_kwargs`: what `web.Server()` builds a connection's handler from; the
  door builds a `GigwireRequestHandler` from them instead (`make_handler`).
- `RequestHandler.handle_error(request, status, exc, message)`: overridden so what aiohttp's HTTP
  parser refuses (raw non-ASCII bytes in the request line, a line over 8190 bytes, control
  characters in a header) is answered in the REST error shape and logged as one client-fault
  warning, not an ERROR with a traceback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from hub.logs import client_fault

log = logging.getLogger("gigwire.http")

_STATUS_CODES = {400: "bad_request", 413: "too_large", 431: "bad_request"}

CHECKED_RANGE = "aiohttp>=3.14,<3.15"
"""The versions the private uses below were checked against (pinned in pyproject.toml)."""


class _Factory:
    """What the sites listen with: `make()` per connection; anything else aiohttp asks of its
    server (its connections, shutdown ...) is the server's."""

    __slots__ = ("_make", "_server")

    def __init__(self, server: web.Server, make: Callable[[], asyncio.Protocol]) -> None:
        self._server = server
        self._make = make

    def __call__(self) -> asyncio.Protocol:
        return self._make()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class GateRunner(web.AppRunner):
    """An AppRunner whose sites make each connection's protocol with `gate(server)` instead of
    aiohttp's own request handler."""

    def gate(self, server: web.Server) -> asyncio.Protocol:
        """The protocol of one new connection (override); by default aiohttp's handler."""
        return make_handler(server)

    @property
    def server(self) -> web.Server | None:
        server = super().server
        if server is None:
            return None
        return cast(web.Server, _Factory(server, lambda: self.gate(server)))


def hand_to_aiohttp(server: web.Server, transport: asyncio.Transport, head: bytes) -> asyncio.Protocol:
    """Give a connection whose first `head` bytes were already read to aiohttp's request handler."""
    handler = make_handler(server)
    transport.set_protocol(handler)
    handler.connection_made(transport)
    if head:
        handler.data_received(head)
    return handler


def message_tail(request: web.BaseRequest) -> bytes:
    """Bytes aiohttp's protocol read past `request`'s head (a client that did not wait for the 101)."""
    return bytes(getattr(request.protocol, "_message_tail", b""))


def tell_lost(protocol: asyncio.BaseProtocol, exc: Exception | None) -> None:
    """Tell aiohttp's protocol, which gave its transport away, that the connection is gone."""
    protocol.connection_lost(exc)


class GigwireRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol, answering its HTTP parser's refusals in the REST error
    shape (`{"success": false, "error": {"code", "message"}}`) with one client-fault warning."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500 or not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        reason = (exc.message or type(exc).__name__).split("\n", 1)[0][:200]
        client_fault(log, "HTTP request refused by the parser", peer=request.remote, error=reason)
        if request.writer.output_size > 0:  # as aiohttp: some of an answer went out already
            raise ConnectionError("Response is sent already, cannot send another response")
        error = {
            "code": _STATUS_CODES.get(status, "bad_request"),
            "message": f"Malformed HTTP request: {reason}",
        }
        body = orjson.dumps({"success": False, "error": error})
        response = web.Response(status=status, body=body, content_type="application/json")
        response.force_close()
        return response


def make_handler(server: web.Server) -> asyncio.Protocol:
    """What `server()` makes (one connection's protocol), as a GigwireRequestHandler."""
    loop: asyncio.AbstractEventLoop = server._loop
    kwargs: dict[str, Any] = server._kwargs
    return cast(asyncio.Protocol, GigwireRequestHandler(server, loop=loop, **kwargs))
