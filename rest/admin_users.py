"""/api/admin/users: search users, see one user's private view, ban and unban.

A ban, in one transaction with its audit row: every refresh-token family of the user is revoked, the
user row gets banned_at/ban_reason, and SESSION_REVOKED {reason: banned} goes through the outbox, so
every hub closes the user's realtime sessions on both transports (ERROR unauthorized, close 4401).
From the commit on, the user's access tokens are refused: by every /api route with 403 forbidden
(`details.reason: banned`, rest/http.py), by login and refresh with the same 403, and by a realtime
connect or AUTHENTICATE like a revoked login (hub/revoke.py standing). Unban lifts it; the user logs
in again."""

from __future__ import annotations

from typing import Annotated, Any, cast

import asyncpg
import msgspec
from aiohttp import web

from domain import audit
from hub.clock import epoch_ms
from hub.events import SessionRevoked, to_wire
from hub.keys import POOL
from hub.model import EpochMs
from hub.outbox import enqueue
from rest.admin_common import OptionalReason, ReasonInput, require_admin
from rest.api import Routes, load, load_all, ok
from rest.errors import ApiError
from rest.http import path_uuid, query_int
from rest.users import USER_COLUMNS, User

routes = Routes("admin")


class AdminUser(User):
    """A user's full private view as admins see it: the profile, money fields and the ban."""

    banned_at: Annotated[EpochMs | None, msgspec.Meta(description="when banned; null when not")]
    ban_reason: str | None


_PAGE = {"type": "integer", "minimum": 1, "maximum": 10**6}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": 200}


def _like(text: str) -> str:
    """`text` as a LIKE pattern matching it anywhere (its own % and _ taken literally)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@routes.get(
    "/api/admin/users",
    summary="Admin: search users by phone, name or email",
    description="q (1 to 100 characters) matches anywhere in the phone, name or email, case-insensitively;"
    " banned=true lists only banned users. Newest first, paged.",
    auth=True,
    response=list[AdminUser],
    meta={"page": int, "limit": int, "total": int},
    parameters=(
        {"name": "q", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 100}},
        {"name": "banned", "in": "query", "required": False, "schema": {"enum": ["true", "false"]}},
        {"name": "page", "in": "query", "required": False, "schema": _PAGE},
        {"name": "limit", "in": "query", "required": False, "schema": _LIMIT},
    ),
    errors=(400, 401, 403),
)
async def search_users(request: web.Request) -> web.Response:
    """Users matching q (and the banned filter), newest first."""
    require_admin(request)
    page = query_int(request, "page", 1, 1, 10**6)
    limit = query_int(request, "limit", 50, 1, 200)
    where: list[str] = ["true"]
    args: list[Any] = []
    q = request.query.get("q", "").strip()
    if len(q) > 100:
        raise ApiError("bad_request", "Query parameter q is at most 100 characters.")
    if q:
        args.append(_like(q))
        where.append(f"(phone ILIKE ${len(args)} OR name ILIKE ${len(args)} OR email ILIKE ${len(args)})")
    banned = request.query.get("banned")
    if banned not in (None, "", "true", "false"):
        raise ApiError("bad_request", "Query parameter banned must be true or false.")
    if banned:
        where.append("banned_at IS NOT NULL" if banned == "true" else "banned_at IS NULL")
    condition = " AND ".join(where)
    pool = request.app[POOL]
    rows = await pool.fetch(
        f"SELECT {USER_COLUMNS} FROM users WHERE {condition} ORDER BY created_at DESC, id"
        f" LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
        *args,
        limit,
        (page - 1) * limit,
    )
    total = await pool.fetchval(f"SELECT count(*) FROM users WHERE {condition}", *args)
    return ok(load_all(AdminUser, rows), page=page, limit=limit, total=total)


@routes.get(
    "/api/admin/users/{id}",
    summary="Admin: one user's full private view",
    auth=True,
    response=AdminUser,
    errors=(401, 403, 404),
)
async def get_user(request: web.Request) -> web.Response:
    """Every field of the user, the ban included."""
    require_admin(request)
    user_id = path_uuid(request)
    row = await request.app[POOL].fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", user_id)
    if row is None:
        raise ApiError("not_found", f"No user {user_id}.")
    return ok(load(AdminUser, row))


@routes.post(
    "/api/admin/users/{id}/ban",
    summary="Admin: ban a user (sessions closed on every node, tokens refused)",
    description="409 when the user is already banned; 400 when banning yourself.",
    auth=True,
    body=ReasonInput,
    response=AdminUser,
    errors=(400, 401, 403, 404, 409),
)
async def ban(request: web.Request, body: ReasonInput) -> web.Response:
    """Ban the user: revoke every login, close every session, refuse every token."""
    claims = require_admin(request)
    user_id = path_uuid(request)
    if user_id == claims.user_id:
        raise ApiError("bad_request", "An admin cannot ban themselves.")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", user_id):
            raise ApiError("not_found", f"No user {user_id}.")
        # Refresh tokens before the user row: a refresh locks them in that order too (no deadlock).
        await conn.execute(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", user_id
        )
        row = await conn.fetchrow(
            f"UPDATE users SET banned_at = now(), ban_reason = $2 WHERE id = $1 AND banned_at IS NULL"
            f" RETURNING {USER_COLUMNS}",
            user_id,
            body.reason,
        )
        if row is None:
            raise ApiError("conflict", "This user is already banned.")
        event = SessionRevoked(user_id=user_id, reason="banned")
        await enqueue(cast(asyncpg.Connection, conn), "SESSION_REVOKED", to_wire(event), user_ids=[user_id])
        after = {"bannedAt": epoch_ms(row["banned_at"]), "banReason": body.reason}
        await audit.record(
            conn, actor_id=claims.user_id, action="user.ban", target_type="user", target_id=user_id,
            before={"bannedAt": None, "banReason": None}, after=after, reason=body.reason,
        )  # fmt: skip
    return ok(load(AdminUser, row))


@routes.post(
    "/api/admin/users/{id}/unban",
    summary="Admin: lift a user's ban",
    description="409 when the user is not banned. The user logs in again to get tokens.",
    auth=True,
    body=OptionalReason,
    response=AdminUser,
    errors=(400, 401, 403, 404, 409),
)
async def unban(request: web.Request, body: OptionalReason) -> web.Response:
    """Lift the ban."""
    claims = require_admin(request)
    user_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        before = await conn.fetchrow(
            "SELECT banned_at, ban_reason FROM users WHERE id = $1 FOR UPDATE", user_id
        )
        if before is None:
            raise ApiError("not_found", f"No user {user_id}.")
        if before["banned_at"] is None:
            raise ApiError("conflict", "This user is not banned.")
        row = await conn.fetchrow(
            f"UPDATE users SET banned_at = NULL, ban_reason = NULL WHERE id = $1 RETURNING {USER_COLUMNS}",
            user_id,
        )
        assert row is not None
        await audit.record(
            conn, actor_id=claims.user_id, action="user.unban", target_type="user", target_id=user_id,
            before={"bannedAt": epoch_ms(before["banned_at"]), "banReason": before["ban_reason"]},
            after={"bannedAt": None, "banReason": None}, reason=body.reason,
        )  # fmt: skip
    return ok(load(AdminUser, row))
