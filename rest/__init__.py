"""The HTTP API under /api: one module per resource; `setup` mounts them on the web app."""

from __future__ import annotations

import importlib

from aiohttp import web

from rest.admin_common import admin_middleware
from rest.api import Routes
from rest.errors import error_middleware
from rest.http import cors_middleware, user_middleware
from rest.inputs import input_middleware
from rest.ratelimit import rate_limit_middleware

# The resource modules, one a line; each exports `routes`, a rest.api.Routes: aiohttp mounts its
# table, and rest/openapi.py documents its operations in /api/openapi.json.
MODULES: list[str] = [
    "rest.auth",
    "rest.google_auth",
    "rest.users",
    "rest.email_verify",
    "rest.phone_link",
    "rest.account_export",
    "rest.account_delete",
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
    "rest.conversations",
    "rest.blocks",
    "rest.payments",
    "rest.webhooks",
    "rest.wallet",
    "rest.bank_accounts",
    "rest.bank_primary",
    "rest.admin_refunds",
    "rest.profiles",
    "rest.reviews",
    "rest.saved_gigs",
    "rest.media",
    "rest.media_profile",
    "rest.admin_audit",
    "rest.admin_users",
    "rest.id_verification",
    "rest.reports",
    "rest.admin_gigs",
    "rest.admin_disputes",
    "rest.admin_ops",
    "rest.server_api",
    "rest.server_stats",
    "rest.openapi",
]


def setup(app: web.Application) -> None:
    """Mount every /api route and the middlewares that give them CORS, one error shape, refusal of
    unstorable text in paths, queries and headers, rate limits, 401 for a vanished user, 403 for a
    banned one, and the admin check of every /api/admin/ route."""
    app.middlewares.extend(
        [
            cors_middleware,
            error_middleware,
            input_middleware,
            rate_limit_middleware,
            user_middleware,
            admin_middleware,
        ]
    )
    for name in MODULES:
        module = importlib.import_module(name)
        routes: Routes = module.routes
        app.router.add_routes(routes.table)
        if hasattr(module, "setup_app"):  # a module with state of its own (e.g. the media store)
            module.setup_app(app)
