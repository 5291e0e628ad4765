"""/api/admin/gigs: hide a gig from everyone but its owner and admins, and show it again.

A hidden gig (gigs.hidden_at, 0019_admin.sql) is left out of GET /api/gigs and its search
(rest/gig_query.py), of recommendations (rest/recommend.py), takes no applications
(rest/applications.py), and GET /api/gigs/{id} answers 404 to anyone but its owner and admins; the
owner still sees it in /api/gigs/my-gigs. Hiding changes nothing else (its orders go on)."""

from __future__ import annotations

from typing import Annotated

import asyncpg
import msgspec
from aiohttp import web

from domain import audit
from hub.clock import epoch_ms
from hub.keys import POOL
from hub.model import EpochMs
from rest.admin_common import OptionalReason, ReasonInput, require_admin
from rest.api import Routes, Wire, int_query, ok
from rest.errors import ApiError
from rest.gig_search import GIG_COLUMNS, Gig, load_gig
from rest.http import path_uuid, query_int

routes = Routes("admin")


class AdminGig(Wire):
    """A gig with its moderation state."""

    gig: Gig
    hidden_at: Annotated[EpochMs | None, msgspec.Meta(description="when hidden; null when listed")]
    hidden_reason: str | None


def _admin_gig(row: asyncpg.Record) -> AdminGig:
    return AdminGig(
        gig=load_gig(dict(row)), hidden_at=epoch_ms(row["hidden_at"]), hidden_reason=row["hidden_reason"]
    )


_COLUMNS = f"{GIG_COLUMNS}, g.hidden_at, g.hidden_reason"


@routes.get(
    "/api/admin/gigs/hidden",
    summary="Admin: the hidden gigs, most recently hidden first",
    auth=True,
    response=list[AdminGig],
    meta={"page": int, "limit": int, "total": int},
    parameters=(
        int_query("page", 1, 10**6),
        int_query("limit", 1, 200),
    ),
    errors=(400, 401, 403),
)
async def hidden_gigs(request: web.Request) -> web.Response:
    """Hidden gigs, paged."""
    require_admin(request)
    page = query_int(request, "page", 1, 1, 10**6)
    limit = query_int(request, "limit", 50, 1, 200)
    pool = request.app[POOL]
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM gigs g WHERE g.hidden_at IS NOT NULL ORDER BY g.hidden_at DESC, g.id"
        " LIMIT $1 OFFSET $2",
        limit,
        (page - 1) * limit,
    )
    total = await pool.fetchval("SELECT count(*) FROM gigs WHERE hidden_at IS NOT NULL")
    return ok([_admin_gig(r) for r in rows], page=page, limit=limit, total=total)


async def _set_hidden(request: web.Request, hide: bool, reason: str | None) -> web.Response:
    claims = require_admin(request)
    gig_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        before = await conn.fetchrow(
            "SELECT hidden_at, hidden_reason FROM gigs WHERE id = $1 FOR UPDATE", gig_id
        )
        if before is None:
            raise ApiError("not_found", f"No gig {gig_id}.")
        if (before["hidden_at"] is not None) == hide:
            raise ApiError("conflict", f"This gig is already {'hidden' if hide else 'listed'}.")
        row = await conn.fetchrow(
            "UPDATE gigs g SET hidden_at = CASE WHEN $2 THEN now() END,"
            f" hidden_reason = CASE WHEN $2 THEN $3 END WHERE g.id = $1 RETURNING {_COLUMNS}",
            gig_id,
            hide,
            reason,
        )
        assert row is not None
        await audit.record(
            conn, actor_id=claims.user_id, action="gig.hide" if hide else "gig.unhide", target_type="gig",
            target_id=gig_id,
            before={"hiddenAt": epoch_ms(before["hidden_at"]), "hiddenReason": before["hidden_reason"]},
            after={"hiddenAt": epoch_ms(row["hidden_at"]), "hiddenReason": row["hidden_reason"]},
            reason=reason,
        )  # fmt: skip
    return ok(_admin_gig(row))


@routes.post(
    "/api/admin/gigs/{id}/hide",
    summary="Admin: hide a gig from listings, search, recommendations and strangers",
    description="409 when it is already hidden.",
    auth=True,
    body=ReasonInput,
    response=AdminGig,
    errors=(400, 401, 403, 404, 409),
)
async def hide(request: web.Request, body: ReasonInput) -> web.Response:
    """Hide the gig."""
    return await _set_hidden(request, True, body.reason)


@routes.post(
    "/api/admin/gigs/{id}/unhide",
    summary="Admin: list a hidden gig again",
    description="409 when it is not hidden.",
    auth=True,
    body=OptionalReason,
    response=AdminGig,
    errors=(400, 401, 403, 404, 409),
)
async def unhide(request: web.Request, body: OptionalReason) -> web.Response:
    """Show the gig again."""
    return await _set_hidden(request, False, body.reason)
