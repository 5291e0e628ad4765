"""Blocks: a user stops another from starting anything new with them.

POST /api/users/{id}/block blocks (idempotent), DELETE lifts the caller's own block, GET
/api/users/me/blocks lists whom the caller blocks. A block, in either direction, refuses new
applications between the two (403 `forbidden`, details.reason `blocked`) and new messages in
pre-order threads (ERROR `forbidden` on the realtime protocol); an order's chat keeps working, since
money is at stake and a dispute reads it. Changing a block takes the pair's advisory lock
exclusively (hub/threads.py), so a message or application racing it lands before the block's
answer or is refused. Only the blocker sees or lifts their block; the blocked user is not told."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from hub import threads
from hub.keys import POOL
from hub.model import EpochMs, Uuid
from rest.api import Routes, Wire, int_query, load_all, ok
from rest.errors import ApiError
from rest.http import path_uuid, query_int, require_user

routes = Routes("blocks")


class Block(Wire):
    """A block the caller holds: the user blocked and since when."""

    user_id: Uuid
    name: Annotated[str | None, msgspec.Meta(description="The blocked user's display name.")]
    avatar_url: str | None
    created_at: EpochMs


class Unblocked(Wire):
    """The answer of lifting a block: whether there was one."""

    user_id: Uuid
    deleted: bool


_USER_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
    "description": "the user to block or unblock",
}


@routes.post(
    "/api/users/{id}/block",
    summary="Block a user: no new applications or pre-order messages between you (idempotent)",
    auth=True,
    response=Block,
    status=201,
    parameters=(_USER_ID,),
    errors=(400, 404),
)
async def block(request: web.Request) -> web.Response:
    """Block the user (201; 200 when already blocked). Not oneself (400), not a missing user (404)."""
    claims = require_user(request)
    other = path_uuid(request)
    if other == claims.user_id:
        raise ApiError("bad_request", "You cannot block yourself.", details={"parameter": "id"})
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await threads.lock_pair(conn, claims.user_id, other)
        if await conn.fetchval("SELECT 1 FROM users WHERE id = $1", other) is None:
            raise ApiError("not_found", f"No user {other}.")
        created = await conn.fetchval(
            "INSERT INTO user_blocks (blocker_id, blocked_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING true",
            claims.user_id,
            other,
        )
        row = await conn.fetchrow(_BLOCKS + " AND b.blocked_id = $2", claims.user_id, other)
    return ok(load_all(Block, [row])[0], status=201 if created else 200)


@routes.delete(
    "/api/users/{id}/block",
    summary="Lift one's block of a user (idempotent)",
    auth=True,
    response=Unblocked,
    parameters=(_USER_ID,),
    errors=(404,),
)
async def unblock(request: web.Request) -> web.Response:
    """Lift the caller's block of the user; `deleted` false when there was none."""
    claims = require_user(request)
    other = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await threads.lock_pair(conn, claims.user_id, other)
        gone = await conn.fetchval(
            "DELETE FROM user_blocks WHERE blocker_id = $1 AND blocked_id = $2 RETURNING true",
            claims.user_id,
            other,
        )
    return ok(Unblocked(user_id=other, deleted=bool(gone)))


_BLOCKS = (
    "SELECT b.blocked_id::text AS user_id, u.name, u.avatar_url, b.created_at"
    " FROM user_blocks b JOIN users u ON u.id = b.blocked_id WHERE b.blocker_id = $1"
)


@routes.get(
    "/api/users/me/blocks",
    summary="The users the caller blocks, newest block first",
    auth=True,
    response=list[Block],
    meta={"page": int, "limit": int, "total": Annotated[int, msgspec.Meta(ge=0)]},
    parameters=(
        int_query("page", 1, 100_000),
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 100},
            "description": "default 50",
        },
    ),
    errors=(400,),
)
async def my_blocks(request: web.Request) -> web.Response:
    """The users the caller blocks, newest first (those who block the caller are not shown)."""
    claims = require_user(request)
    page = query_int(request, "page", 1, 1, 100_000)
    limit = query_int(request, "limit", 50, 1, 100)
    async with request.app[POOL].acquire() as conn:
        total = await conn.fetchval("SELECT count(*) FROM user_blocks WHERE blocker_id = $1", claims.user_id)
        rows = await conn.fetch(
            _BLOCKS + " ORDER BY b.created_at DESC, b.blocked_id LIMIT $2 OFFSET $3",
            claims.user_id,
            limit,
            (page - 1) * limit,
        )
    return ok(load_all(Block, rows), page=page, limit=limit, total=total)
