"""Saved gigs (a user's bookmarks: POST/DELETE /api/gigs/{id}/save, GET /api/gigs/saved) and
GET /api/categories (every gig category with its count of open gigs).

Any signed-in user may save any gig (gigs are public), once: saving again answers the same saved
state. A saved gig that is deleted leaves the list (ON DELETE CASCADE); one that is no longer open
stays, with its status."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web

from hub.keys import POOL
from hub.model import EpochMs, Uuid, wire_value
from rest.api import Routes, Wire, ok
from rest.errors import ApiError
from rest.gig_search import CATEGORIES, GIG_COLUMNS, Category, Gig, load_gig
from rest.http import path_uuid, query_int, require_user

routes = Routes("gigs")


PAGING: tuple[dict[str, Any], ...] = tuple(
    {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": top},
    }
    for name, top in (("page", 10_000), ("limit", 100))
)
"""The page and limit query parameters of page-paged lists (page from 1 to 10,000; limit to 100)."""


class SavedState(Wire):
    """Whether the caller has the gig saved, and since when."""

    gig_id: Uuid
    saved: bool
    saved_at: EpochMs | None


class SavedGig(Wire):
    """A gig the caller saved, and when."""

    gig: Gig
    saved_at: EpochMs


class CategoryCount(Wire):
    """A gig category and how many gigs of it are open now."""

    category: Category
    open_gigs: Annotated[int, msgspec.Meta(ge=0)]


def _ms(value: object) -> int:
    result = wire_value(value)
    assert isinstance(result, int)
    return result


@routes.post(
    "/api/gigs/{id}/save",
    summary="Save a gig to the caller's list (again: no change)",
    description="Saving a gig already saved changes nothing (savedAt stays the first save).",
    auth=True,
    response=SavedState,
    errors=(404,),
)
async def save_gig(request: web.Request) -> web.Response:
    """Save the gig for the caller; idempotent."""
    claims = require_user(request)
    gig_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        # FOR KEY SHARE: a concurrent delete of the gig waits, so the insert cannot lose its gig.
        # A gig hidden by an admin (0019_admin.sql) exists for its owner only.
        visible = await conn.fetchval(
            "SELECT 1 FROM gigs WHERE id = $1 AND (hidden_at IS NULL OR client_id = $2) FOR KEY SHARE",
            gig_id,
            claims.user_id,
        )
        if visible is None:
            raise ApiError("not_found", f"No gig {gig_id}.")
        saved_at = await conn.fetchval(
            "INSERT INTO saved_gigs (user_id, gig_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING created_at",
            claims.user_id,
            gig_id,
        )
        if saved_at is None:  # saved already
            saved_at = await conn.fetchval(
                "SELECT created_at FROM saved_gigs WHERE user_id = $1 AND gig_id = $2", claims.user_id, gig_id
            )
    return ok(SavedState(gig_id=gig_id, saved=True, saved_at=_ms(saved_at)))


@routes.delete(
    "/api/gigs/{id}/save",
    summary="Remove a gig from the caller's saved list",
    description="404 when the gig is not in the caller's list.",
    auth=True,
    response=SavedState,
    errors=(404,),
)
async def unsave_gig(request: web.Request) -> web.Response:
    """Remove the gig from the caller's saved list."""
    claims = require_user(request)
    gig_id = path_uuid(request)
    removed = await request.app[POOL].fetchval(
        "DELETE FROM saved_gigs WHERE user_id = $1 AND gig_id = $2 RETURNING 1", claims.user_id, gig_id
    )
    if removed is None:
        raise ApiError("not_found", f"Gig {gig_id} is not in your saved gigs.")
    return ok(SavedState(gig_id=gig_id, saved=False, saved_at=None))


@routes.get(
    "/api/gigs/saved",
    summary="The caller's saved gigs, most recently saved first (paged)",
    auth=True,
    response=list[SavedGig],
    meta={"page": int, "limit": int, "total": int},
    parameters=PAGING,
    errors=(400,),
)
async def saved_gigs(request: web.Request) -> web.Response:
    """The caller's saved gigs, newest save first."""
    claims = require_user(request)
    page = query_int(request, "page", 1, 1, 10_000)
    limit = query_int(request, "limit", 20, 1, 100)
    async with request.app[POOL].acquire() as conn:
        # Saved before an admin hid it: left out (kept, and back if unhidden), but for its owner.
        shown = "s.user_id = $1 AND (g.hidden_at IS NULL OR g.client_id = $1)"
        total = await conn.fetchval(
            f"SELECT count(*) FROM saved_gigs s JOIN gigs g ON g.id = s.gig_id WHERE {shown}", claims.user_id
        )
        rows = await conn.fetch(
            f"SELECT {GIG_COLUMNS}, s.created_at AS saved_at FROM saved_gigs s JOIN gigs g ON g.id = s.gig_id"
            f" WHERE {shown} ORDER BY s.created_at DESC, s.gig_id DESC LIMIT $2 OFFSET $3",
            claims.user_id,
            limit,
            (page - 1) * limit,
        )
    items = [SavedGig(gig=load_gig(r), saved_at=_ms(r["saved_at"])) for r in rows]
    return ok(items, page=page, limit=limit, total=total)


@routes.get(
    "/api/categories",
    summary="Every gig category with its number of open gigs",
    description="All categories, in their fixed order, with 0 for those without open gigs. No token"
    " needed (like GET /api/gigs).",
    auth=None,
    response=list[CategoryCount],
)
async def categories(request: web.Request) -> web.Response:
    """Each category and its count of open gigs."""
    rows = await request.app[POOL].fetch(
        "SELECT category, count(*) AS n FROM gigs WHERE status = 'open' AND hidden_at IS NULL"
        " GROUP BY category"
    )
    counts = {r["category"]: int(r["n"]) for r in rows}
    items = [CategoryCount(category=c, open_gigs=counts.get(c, 0)) for c in CATEGORIES]  # type: ignore[arg-type]
    return ok(items)
