"""The HTTP API under /api: one module per resource; `setup` mounts them on the web app."""

from __future__ import annotations

from aiohttp import web

from rest import auth, errors, ratelimit, users
from rest.http import cors_middleware

MODULES = [auth, users]


def setup(app: web.Application) -> None:
    """Mount every /api route and the middlewares that give them CORS, one error shape and rate limits."""
    app.middlewares.extend([cors_middleware, errors.error_middleware, ratelimit.rate_limit_middleware])
    for module in MODULES:
        app.router.add_routes(module.routes)
