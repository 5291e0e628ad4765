"""gigwire's background loops: outbox relay, FCM push, order timers."""

from __future__ import annotations

from aiohttp import web


def embed(app: web.Application) -> None:
    """Run the workers inside the web process (the one-process default). Not built yet: issue 6."""
    return None
