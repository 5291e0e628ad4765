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
  protocol of the loss, so the request handler waiting on it ends (`tell_lost`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

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
        return cast(asyncio.Protocol, server())

    @property
    def server(self) -> web.Server | None:
        server = super().server
        if server is None:
            return None
        return cast(web.Server, _Factory(server, lambda: self.gate(server)))


def hand_to_aiohttp(server: web.Server, transport: asyncio.Transport, head: bytes) -> asyncio.Protocol:
    """Give a connection whose first `head` bytes were already read to aiohttp's request handler."""
    handler = cast(asyncio.Protocol, server())
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
