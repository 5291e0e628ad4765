"""What every /api/admin route shares: the admin check and the reason an action gives.

An admin route refuses a caller without a token (401), a banned one (403, rest/http.py's
user_middleware, before the handler runs) and one without the `admin` role (403 forbidden). Every
admin action is recorded by domain.audit.record in its own transaction."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from hub.app import Handler
from hub.keys import POOL
from hub.tokens import Claims
from rest.api import Body
from rest.errors import ApiError
from rest.http import require_user

Reason = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=2000, pattern=r"^[^\x00]*\S[^\x00]*$", description="why (audited)"),
]
UuidIn = Annotated[
    str,
    msgspec.Meta(
        pattern="^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        extra_json_schema={"format": "uuid"},
    ),
]
"""A UUID in a request body (the pattern makes PostgreSQL's uuid accept it)."""
Note = Annotated[str, msgspec.Meta(max_length=2000, pattern=r"^[^\x00]*$", description="a note (audited)")]


def require_admin(request: web.Request) -> Claims:
    """The caller's claims when the caller is an admin; else 401 (no valid token) or 403."""
    claims = require_user(request)
    if "admin" not in claims.roles:
        raise ApiError("forbidden", "Only an admin can do this.")
    return claims


class ReasonInput(Body):
    """Why the action is taken (kept in the audit log)."""

    reason: Reason


class OptionalReason(Body):
    """Why, optionally (kept in the audit log)."""

    reason: Note | None = None


ADMIN_PREFIX = "/api/admin/"


@web.middleware
async def admin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /api/admin/ request is refused before its handler (and before its body is read) unless
    the caller is an admin: 401 without a valid token, 403 without the role in the token and, still,
    in the user row (an admin demoted since the token was issued is refused at once). Runs after
    user_middleware, so a banned admin hears 403 banned first. Handlers check again (require_admin)."""
    if request.path.startswith(ADMIN_PREFIX) and request.method != "OPTIONS":
        claims = require_admin(request)
        still = await request.app[POOL].fetchval(
            "SELECT 'admin' = ANY (roles) FROM users WHERE id = $1::uuid", claims.user_id
        )
        if not still:
            raise ApiError("forbidden", "Only an admin can do this.")
    return await handler(request)
