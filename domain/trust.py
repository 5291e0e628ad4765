"""A user's trustScore and badges: one documented rule (README "Reviews and trust"), computed from
the user's row and orders by `recompute`, inside the transaction of each event that changes an input.

The rule: the sum of these points, rounded half up and clamped to 0..100:

| input | points |
|---|---|
| base | 40 |
| phone verified / email verified / ID verified | +10 / +10 / +15 |
| completed orders (either party) | +2 each, at most +20 |
| rating, once reviewed at least once | (rating - 3) x 5: -10 (1 star) to +10 (5 stars) |
| disputes lost | -10 each, at most -30 |
| account age | +1 per full 30 days, at most +10 |

A dispute is lost by the client when an admin resolves it with `release` (the doer is paid), by the
doer when it is resolved with `refund`. A new user whose phone is verified scores 50, seed 004's
default. Badges: `phone_verified`, `email_verified`, `id_verified`, `first_gig` (1 completed order),
`ten_gigs` (10), `top_rated` (5 reviews or more, rating at least 4.5), `veteran` (a year on gigwire),
`trusted` (score 80 or more and no dispute lost). Account age counts at the next recomputation.

Who calls `recompute`: domain.orders.transition on approve and dispute resolution (both parties,
after `lock_parties`), domain.reviews on a review and its edit (the reviewee), rest/auth on login
(phone verified). Any flow that changes an input (email or ID verification) calls it in its own
transaction."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.db import Conn

__all__ = ["BADGES", "Inputs", "Trust", "lock_parties", "recompute", "rule"]

BASE = 40
VERIFIED_POINTS = {"phone": 10, "email": 10, "id": 15}
PER_COMPLETED, COMPLETED_MAX = 2, 20
RATING_WEIGHT = 5
PER_DISPUTE_LOST, DISPUTES_MAX = 10, 30
AGE_DAYS_PER_POINT, AGE_MAX = 30, 10

BADGES: dict[str, str] = {
    "phone_verified": "phone number verified",
    "email_verified": "email address verified",
    "id_verified": "student ID verified by support",
    "first_gig": "completed a first order",
    "ten_gigs": "completed 10 orders",
    "top_rated": "5 reviews or more, rated 4.5 or better",
    "veteran": "a year on gigwire",
    "trusted": "trust score 80 or more, no dispute lost",
}
"""Every badge id, in the order a user's badges are listed, and what earns it."""


@dataclass(frozen=True)
class Inputs:
    """What the rule reads about one user."""

    phone_verified: bool
    email_verified: bool
    id_verified: bool
    completed_orders: int
    rating: float
    review_count: int
    disputes_lost: int
    age_days: int


@dataclass(frozen=True)
class Trust:
    """The rule's outcome: the score (0-100) and the badge ids, in BADGES order."""

    score: int
    badges: list[str]


def rule(i: Inputs) -> Trust:
    """The documented rule (module docstring) applied to `i`."""
    points = float(BASE)
    points += VERIFIED_POINTS["phone"] * i.phone_verified
    points += VERIFIED_POINTS["email"] * i.email_verified
    points += VERIFIED_POINTS["id"] * i.id_verified
    points += min(PER_COMPLETED * i.completed_orders, COMPLETED_MAX)
    if i.review_count > 0:
        points += (i.rating - 3) * RATING_WEIGHT
    points -= min(PER_DISPUTE_LOST * i.disputes_lost, DISPUTES_MAX)
    points += min(i.age_days // AGE_DAYS_PER_POINT, AGE_MAX)
    score = max(0, min(100, math.floor(points + 0.5)))  # half up, not Python's half to even
    earned = {
        "phone_verified": i.phone_verified,
        "email_verified": i.email_verified,
        "id_verified": i.id_verified,
        "first_gig": i.completed_orders >= 1,
        "ten_gigs": i.completed_orders >= 10,
        "top_rated": i.review_count >= 5 and i.rating >= 4.5,
        "veteran": i.age_days >= 365,
        "trusted": score >= 80 and i.disputes_lost == 0,
    }
    return Trust(score, [badge for badge in BADGES if earned[badge]])


async def inputs(conn: Conn, user_id: str) -> Inputs | None:
    """The rule's inputs for one user as the database has them now; None when there is no such user."""
    row = await conn.fetchrow(
        "SELECT u.phone_verified, u.email_verified, u.id_verified, u.rating::float8 AS rating,"
        " u.review_count, u.created_at,"
        " (SELECT count(*) FROM orders o WHERE o.status = 'completed'"
        "   AND (o.client_id = u.id OR o.doer_id = u.id)) AS completed_orders,"
        " (SELECT count(*) FROM orders o WHERE o.dispute ? 'outcome' AND ("
        "   (o.client_id = u.id AND o.dispute->>'outcome' = 'release')"
        "   OR (o.doer_id = u.id AND o.dispute->>'outcome' = 'refund'))) AS disputes_lost"
        " FROM users u WHERE u.id = $1",
        user_id,
    )
    if row is None:
        return None
    age = dt.datetime.now(dt.UTC) - row["created_at"]
    return Inputs(
        phone_verified=row["phone_verified"],
        email_verified=row["email_verified"],
        id_verified=row["id_verified"],
        completed_orders=int(row["completed_orders"]),
        rating=float(row["rating"]),
        review_count=int(row["review_count"]),
        disputes_lost=int(row["disputes_lost"]),
        age_days=max(age.days, 0),
    )


async def recompute(conn: Conn, user_id: str) -> Trust | None:
    """Recompute and store one user's trust_score and badges inside the caller's transaction; the new
    Trust, or None when the user does not exist.

    The user's row is locked first, so the inputs are read after every other transaction that
    recomputed this user has committed (READ COMMITTED gives each later statement a fresh snapshot):
    concurrent events leave the score of their combined inputs, never of one alone. The lock is FOR
    NO KEY UPDATE, the one an UPDATE takes: FOR UPDATE would also wait for, and deadlock with, the
    key-share locks that other transactions' foreign keys hold on the row while they insert reviews
    or orders of this user."""
    if await conn.fetchval("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", user_id) is None:
        return None
    found = await inputs(conn, user_id)
    if found is None:
        return None
    trust = rule(found)
    await conn.execute(
        "UPDATE users SET trust_score = $2, badges = $3 WHERE id = $1", user_id, trust.score, trust.badges
    )
    return trust


async def lock_parties(conn: Conn, *user_ids: str) -> None:
    """Lock the users' rows in id order, before a transaction that updates several of them (an
    order's release moves the doer's money and recomputes both parties): one lock order everywhere,
    so two orders between the same two people, in opposite roles, cannot deadlock."""
    for user_id in sorted(set(user_ids)):
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", user_id)
