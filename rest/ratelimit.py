"""Per-IP and per-user request limits on /api, shared across processes through the Store.

Owned by the auth work (issue 2): fill in `rate_limit_middleware`."""

from __future__ import annotations

from aiohttp import web

from hub.app import Handler


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Placeholder until the limiter lands: passes every request through."""
    return await handler(request)
