"""Reviews over HTTP: write one on a completed order, edit it for a while, reply to one of you, and
read a user's or an order's reviews. The rules are domain/reviews.py's.

Authorization: every route needs a token (401). Reviews are public to signed-in users: anyone may
read a user's reviews and a review; an order's reviews and writing one are its parties' (anyone else
404); only the author edits a review and only the reviewee replies (403 for anyone else)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import UNSET, UnsetType

from domain import reviews
from hub.keys import POOL, SETTINGS
from hub.model import EpochMs, Uuid
from rest.api import Body, FieldErrors, Routes, Wire, load, ok
from rest.errors import ApiError
from rest.http import path_uuid, query_int, require_user
from rest.saved_gigs import PAGING
from rest.users import NO_NUL, NOT_BLANK

routes = Routes("reviews")

Stars = Annotated[int, msgspec.Meta(ge=1, le=5, description="1 to 5")]
ReviewText = Annotated[str, msgspec.Meta(max_length=2000, pattern=NO_NUL)]
ReviewerRole = Literal["client", "doer"]


class ReviewInput(Body):
    """POST /api/orders/{id}/review: the stars and, optionally, a text."""

    whole_floats = frozenset({"stars"})

    stars: Stars
    text: ReviewText = ""


class ReviewPatch(Body):
    """PATCH /api/reviews/{id}: new stars and/or text, at least one."""

    whole_floats = frozenset({"stars"})

    stars: Stars | UnsetType = UNSET
    text: ReviewText | UnsetType = UNSET

    def __post_init__(self) -> None:
        if self.stars is UNSET and self.text is UNSET:
            raise FieldErrors({"body": "send stars, text or both"})


class ReplyInput(Body):
    """POST /api/reviews/{id}/reply: the reviewee's one reply."""

    text: Annotated[str, msgspec.Meta(min_length=1, max_length=2000, pattern=NOT_BLANK)]


class Review(Wire):
    """One party's review of the other on a completed order, with the reviewee's reply if any."""

    id: Uuid
    order_id: Uuid
    gig_id: Uuid
    reviewer_id: Uuid
    reviewee_id: Uuid
    reviewer_role: Annotated[
        ReviewerRole, msgspec.Meta(description="client: the client reviewed the doer; doer: the other way")
    ]
    reviewer_name: str | None
    reviewer_avatar_url: str | None
    stars: Stars
    text: str
    reply: str | None
    replied_at: EpochMs | None
    created_at: EpochMs
    updated_at: EpochMs
    editable_until: Annotated[EpochMs, msgspec.Meta(description="the author may edit it until then")]


def _review(request: web.Request, row: asyncpg.Record) -> Review:
    hours = request.app[SETTINGS].review_edit_hours
    until = row["created_at"] + dt.timedelta(hours=hours)
    return load(Review, row, editableUntil=int(until.timestamp() * 1000))


_CONFLICTS = (
    "409 with details.reason: not_completed (the order is not completed), window_closed (more than"
    " REVIEW_WINDOW_DAYS since completion, details.closedAt), already_reviewed (details.reviewId)."
)


@routes.post(
    "/api/orders/{id}/review",
    summary="Review the other party of a completed order (once per party and order)",
    description="Within REVIEW_WINDOW_DAYS (default 14) of the order's completion. The reviewee's"
    " rating, trust score and badges change at once, and the reviewee is notified (type review,"
    " event review_received). 404 for anyone but the order's two parties. " + _CONFLICTS,
    auth=True,
    body=ReviewInput,
    response=Review,
    status=201,
    errors=(404, 409),
)
async def create_review(request: web.Request, body: ReviewInput) -> web.Response:
    """The caller's review of the other party of a completed order."""
    claims = require_user(request)
    order_id = path_uuid(request)
    days = request.app[SETTINGS].review_window_days
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await reviews.create(
            conn, order_id=order_id, reviewer_id=claims.user_id, stars=body.stars, text=body.text,
            window_days=days,
        )  # fmt: skip
    return ok(_review(request, row), status=201)


@routes.patch(
    "/api/reviews/{id}",
    summary="Edit one's own review (for REVIEW_EDIT_HOURS after writing it)",
    description="Only the author (403 for others). After REVIEW_EDIT_HOURS (default 24): 409 with"
    " details.reason edit_window_closed. New stars change the reviewee's rating at once.",
    auth=True,
    body=ReviewPatch,
    response=Review,
    errors=(403, 404, 409),
)
async def edit_review(request: web.Request, body: ReviewPatch) -> web.Response:
    """Change the stars and/or text of the caller's own review."""
    claims = require_user(request)
    review_id = path_uuid(request)
    stars = None if isinstance(body.stars, UnsetType) else body.stars
    text = None if isinstance(body.text, UnsetType) else body.text
    hours = request.app[SETTINGS].review_edit_hours
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await reviews.edit(
            conn, review_id=review_id, reviewer_id=claims.user_id, stars=stars, text=text, edit_hours=hours
        )
    return ok(_review(request, row))


@routes.post(
    "/api/reviews/{id}/reply",
    summary="Reply to a review of oneself (once)",
    description="Only the reviewed user (403 for others); a second reply is a 409 with details.reason"
    " already_replied. The review's author is notified (event review_replied).",
    auth=True,
    body=ReplyInput,
    response=Review,
    errors=(403, 404, 409),
)
async def reply_review(request: web.Request, body: ReplyInput) -> web.Response:
    """The reviewee's one reply to a review of them."""
    claims = require_user(request)
    review_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await reviews.reply(conn, review_id=review_id, user_id=claims.user_id, text=body.text)
    return ok(_review(request, row))


@routes.get("/api/reviews/{id}", summary="One review", auth=True, response=Review, errors=(404,))
async def get_review(request: web.Request) -> web.Response:
    """One review (reviews are public to signed-in users)."""
    require_user(request)
    review_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn:
        row = await reviews.fetch(conn, review_id)
    if row is None:
        raise ApiError("not_found", f"No review {review_id}.")
    return ok(_review(request, row))


@routes.get(
    "/api/orders/{id}/reviews",
    summary="The reviews of an order (its parties): at most one by each",
    auth=True,
    response=list[Review],
    errors=(404,),
)
async def order_reviews(request: web.Request) -> web.Response:
    """The order's reviews, oldest first; 404 for anyone but its parties."""
    claims = require_user(request)
    order_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn:
        party = await conn.fetchval(
            "SELECT 1 FROM orders WHERE id = $1 AND $2::uuid IN (client_id, doer_id)",
            order_id,
            claims.user_id,
        )
        if party is None:
            raise ApiError("not_found", f"No order {order_id} of yours.")
        rows = await conn.fetch(
            f"SELECT {reviews.COLUMNS} FROM {reviews.FROM} WHERE r.order_id = $1 ORDER BY r.created_at, r.id",
            order_id,
        )
    return ok([_review(request, r) for r in rows])


_USER_PAGING: tuple[dict[str, Any], ...] = (
    {
        "name": "role",
        "in": "query",
        "required": False,
        "description": "doer: reviews the user got as the doer (from clients); client: as the client",
        "schema": {"type": "string", "enum": ["doer", "client"]},
    },
    *PAGING,
)


@routes.get(
    "/api/users/{id}/reviews",
    summary="The reviews a user received, newest first (paged)",
    auth=True,
    response=list[Review],
    meta={"page": int, "limit": int, "total": int},
    parameters=_USER_PAGING,
    errors=(400, 404),
)
async def user_reviews(request: web.Request) -> web.Response:
    """The reviews the user received, newest first; ?role= keeps those of one side."""
    require_user(request)
    user_id = path_uuid(request)
    role = request.query.get("role")
    if role is not None and role not in ("doer", "client"):
        raise ApiError(
            "bad_request", "Query parameter role must be doer or client.", details={"parameter": "role"}
        )
    page = query_int(request, "page", 1, 1, 10_000)
    limit = query_int(request, "limit", 20, 1, 100)
    # reviewer_role is the other side: the user was the doer when the client wrote the review.
    reviewer_role = {"doer": "client", "client": "doer"}.get(role or "")
    where = "r.reviewee_id = $1 AND ($2::text IS NULL OR r.reviewer_role = $2)"
    async with request.app[POOL].acquire() as conn:
        if await conn.fetchval("SELECT 1 FROM users WHERE id = $1", user_id) is None:
            raise ApiError("not_found", f"No user {user_id}.")
        total = await conn.fetchval(f"SELECT count(*) FROM reviews r WHERE {where}", user_id, reviewer_role)
        rows = await conn.fetch(
            f"SELECT {reviews.COLUMNS} FROM {reviews.FROM} WHERE {where}"
            " ORDER BY r.created_at DESC, r.id DESC LIMIT $3 OFFSET $4",
            user_id,
            reviewer_role,
            limit,
            (page - 1) * limit,
        )
    return ok([_review(request, r) for r in rows], page=page, limit=limit, total=total)
