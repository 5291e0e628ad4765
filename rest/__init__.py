"""The HTTP API under /api: one module per resource; `setup` mounts them on the web app."""

from __future__ import annotations

import importlib

from aiohttp import web

from rest.api import Routes
from rest.errors import error_middleware
from rest.http import cors_middleware, user_middleware
from rest.inputs import input_middleware
from rest.ratelimit import rate_limit_middleware

# The resource modules, one a line; each exports `routes`, a rest.api.Routes: aiohttp mounts its
# table, and rest/openapi.py documents its operations in /api/openapi.json.
MODULES: list[str] = [
    "rest.auth",
    "rest.users",
    "rest.refresh",
    "rest.gigs",
    "rest.gig_boost",
    "rest.recommend",
    "rest.applications",
    "rest.devices",
    "rest.notifications",
    "rest.feed",
    "rest.orders",
    "rest.messages",
    "rest.payments",
    "rest.webhooks",
    "rest.wallet",
    "rest.bank_accounts",
    "rest.admin_refunds",
    "rest.server_api",
    "rest.server_stats",
    "rest.openapi",
]


def setup(app: web.Application) -> None:
    """Mount every /api route and the middlewares that give them CORS, one error shape, refusal of
    unstorable text in paths, queries and headers, rate limits, and 401 for a vanished user."""
    app.middlewares.extend(
        [cors_middleware, error_middleware, input_middleware, rate_limit_middleware, user_middleware]
    )
    for name in MODULES:
        routes: Routes = importlib.import_module(name).routes
        app.router.add_routes(routes.table)
