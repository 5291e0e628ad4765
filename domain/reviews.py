"""Reviews between the two parties of a completed order (README "Reviews and trust").

Each party may review the other once per completed order (1-5 stars and a text), within
`window_days` of the order's completion; the reviewer may edit it for `edit_hours` after writing it;
the reviewee may reply once. The reviewee's rating (users.rating = review_stars / review_count,
rounded to 2 places), trust score and badges change in the review's transaction, and the reviewee
(or, for a reply, the reviewer) is notified through domain/notices.py in it.

Every function runs in the caller's transaction and raises DomainError: not_found (the order or
review is not the caller's to see), forbidden (a party acting on the other's review), conflict with
`details.reason` (not_completed, window_closed, already_reviewed, edit_window_closed,
already_replied).

Locks: create takes the order row FOR SHARE (a concurrent approve, dispute or resolution of the
order, which lock it FOR UPDATE, is either wholly before or wholly after the review), then the
reviewee's row; edit and reply lock the review row, then (edit) the reviewee's row."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import asyncpg

from domain import trust
from domain.errors import DomainError
from domain.notices import Notice, send

if TYPE_CHECKING:
    from hub.db import Conn

__all__ = ["COLUMNS", "FROM", "create", "edit", "fetch", "reply"]

# Every column of a review as the wire shows it (rest/reviews.py's Review), with the order's gig and
# the reviewer's name and avatar; select them FROM `FROM`.
COLUMNS = (
    "r.id::text AS id, r.order_id::text AS order_id, o.gig_id::text AS gig_id,"
    " r.reviewer_id::text AS reviewer_id, r.reviewee_id::text AS reviewee_id, r.reviewer_role,"
    " r.stars, r.text, r.reply, r.replied_at, r.created_at, r.updated_at,"
    " u.name AS reviewer_name, u.avatar_url AS reviewer_avatar_url"
)
FROM = "reviews r JOIN orders o ON o.id = r.order_id JOIN users u ON u.id = r.reviewer_id"


def _conflict(reason: str, message: str, **details: Any) -> DomainError:
    return DomainError("conflict", message, details={"reason": reason, **details})


async def fetch(conn: Conn, review_id: str) -> asyncpg.Record | None:
    """The review with COLUMNS, or None."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM {FROM} WHERE r.id = $1", review_id
    )
    return row


async def _rate(conn: Conn, user_id: str, count_delta: int, stars_delta: int) -> None:
    """Add to the user's review totals and set rating from them, relative to the row's current values
    (so concurrent reviews of one user add up however they interleave)."""
    await conn.execute(
        "UPDATE users SET review_count = review_count + $2, review_stars = review_stars + $3,"
        " rating = CASE WHEN review_count + $2 = 0 THEN 0"
        "  ELSE round((review_stars + $3)::numeric / (review_count + $2), 2) END"
        " WHERE id = $1",
        user_id,
        count_delta,
        stars_delta,
    )


async def create(
    conn: Conn, *, order_id: str, reviewer_id: str, stars: int, text: str, window_days: int
) -> asyncpg.Record:
    """The caller's review of the other party of a completed order; the new review (COLUMNS)."""
    order = await conn.fetchrow(
        "SELECT id, gig_id, client_id::text AS client_id, doer_id::text AS doer_id, status, completed_at"
        " FROM orders WHERE id = $1 FOR SHARE",
        order_id,
    )
    if order is None or reviewer_id not in (order["client_id"], order["doer_id"]):
        raise DomainError("not_found", f"No order {order_id} of yours.")
    if order["status"] != "completed" or order["completed_at"] is None:
        raise _conflict(
            "not_completed",
            f"An order is reviewed once it is completed; this one is {order['status']}.",
            status=order["status"],
        )
    closes = order["completed_at"] + dt.timedelta(days=window_days)
    if dt.datetime.now(dt.UTC) >= closes:
        raise _conflict(
            "window_closed",
            f"Reviews of an order are taken for {window_days} days after it was completed;"
            " this order's window has closed.",
            closedAt=int(closes.timestamp() * 1000),
        )
    role = "client" if reviewer_id == order["client_id"] else "doer"
    reviewee = order["doer_id"] if role == "client" else order["client_id"]
    review_id = await conn.fetchval(
        "INSERT INTO reviews (order_id, reviewer_id, reviewee_id, reviewer_role, stars, text)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id, reviewer_id) DO NOTHING RETURNING id::text",
        order_id,
        reviewer_id,
        reviewee,
        role,
        stars,
        text,
    )
    if review_id is None:
        existing = await conn.fetchval(
            "SELECT id::text FROM reviews WHERE order_id = $1 AND reviewer_id = $2", order_id, reviewer_id
        )
        raise _conflict(
            "already_reviewed",
            "You have already reviewed this order (once per order); edit that review instead.",
            reviewId=existing,
        )
    await _rate(conn, reviewee, 1, stars)
    await trust.recompute(conn, reviewee)
    row = await fetch(conn, review_id)
    assert row is not None
    await _notify(conn, row, reviewee, "review_received", "New review", "You got {stars} for “{gig}”.")
    return row


async def _locked(conn: Conn, review_id: str) -> asyncpg.Record:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, reviewer_id::text AS reviewer_id, reviewee_id::text AS reviewee_id, stars, reply,"
        " created_at FROM reviews WHERE id = $1 FOR UPDATE",
        review_id,
    )
    if row is None:
        raise DomainError("not_found", f"No review {review_id}.")
    return row


async def edit(
    conn: Conn, *, review_id: str, reviewer_id: str, stars: int | None, text: str | None, edit_hours: int
) -> asyncpg.Record:
    """Change the stars and/or text of the caller's own review, within `edit_hours` of writing it; the
    review (COLUMNS). The reviewee's rating follows the new stars."""
    current = await _locked(conn, review_id)
    if current["reviewer_id"] != reviewer_id:
        raise DomainError("forbidden", "Only the review's author may edit it.")
    closes = current["created_at"] + dt.timedelta(hours=edit_hours)
    if dt.datetime.now(dt.UTC) >= closes:
        raise _conflict(
            "edit_window_closed",
            f"A review can be edited for {edit_hours} hours after it was written; this one no longer.",
            closedAt=int(closes.timestamp() * 1000),
        )
    await conn.execute(
        "UPDATE reviews SET stars = coalesce($2, stars), text = coalesce($3, text), updated_at = now()"
        " WHERE id = $1",
        review_id,
        stars,
        text,
    )
    delta = 0 if stars is None else stars - int(current["stars"])
    if delta:
        await _rate(conn, current["reviewee_id"], 0, delta)
        await trust.recompute(conn, current["reviewee_id"])
    row = await fetch(conn, review_id)
    assert row is not None
    text_ = "A review of your work on “{gig}” was changed; it gives {stars}."
    await _notify(conn, row, current["reviewee_id"], "review_edited", "Review changed", text_)
    return row


async def reply(conn: Conn, *, review_id: str, user_id: str, text: str) -> asyncpg.Record:
    """The reviewee's one reply to a review of them; the review (COLUMNS). The reviewer is told."""
    current = await _locked(conn, review_id)
    if user_id != current["reviewee_id"]:  # reviews are public: anyone else may read, not reply
        raise DomainError("forbidden", "Only the reviewed user may reply to a review, not its author.")
    if current["reply"] is not None:
        raise _conflict("already_replied", "This review already has your reply (one reply per review).")
    await conn.execute("UPDATE reviews SET reply = $2, replied_at = now() WHERE id = $1", review_id, text)
    row = await fetch(conn, review_id)
    assert row is not None
    await _notify(
        conn, row, current["reviewer_id"], "review_replied", "Reply to your review",
        "The user you reviewed for “{gig}” replied to your review.",
    )  # fmt: skip
    return row


def _stars(stars: int) -> str:
    return f"{stars} star{'s' if stars != 1 else ''}"


async def _notify(conn: Conn, row: asyncpg.Record, user_id: str, event: str, title: str, body: str) -> None:
    """One review notice; `body` may name {gig} (the gig's title) and {stars} (the review's)."""
    gig = await conn.fetchval("SELECT title FROM gigs WHERE id = $1", row["gig_id"]) or "your gig"
    text = body.format(gig=gig, stars=_stars(int(row["stars"])))
    data = {"reviewId": row["id"], "orderId": row["order_id"], "gigId": row["gig_id"]}
    await send(conn, [Notice(user_id, "review", event, title, text, data)])
