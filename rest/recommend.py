"""GET /api/gigs/recommended: open gigs ranked for the caller from their past work.

The caller's profile is the skills and categories of the gigs they applied to (weight 1 each) and of
the orders they completed as the doer (weight 3 each: finished work says more than an application).
A gig scores the summed weights of its skills found in the profile plus half the weight of its
category; boosted gigs win ties. Gigs the caller owns or already applied to are left out. When the
profile finds fewer gigs than asked (a new doer), the newest open gigs fill the list. Every result
carries `reason`, a sentence saying why it was chosen, and its `score`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import asyncpg
import msgspec
from aiohttp import web

from hub.keys import POOL
from rest.api import Routes, load, ok
from rest.gig_search import GIG_COLUMNS, Gig
from rest.http import query_int, require_user

if TYPE_CHECKING:
    from hub.db import Conn

routes = Routes("gigs")


class RecommendedGig(Gig):
    """A gig with why it was chosen."""

    reason: Annotated[str, msgspec.Meta(description="why this gig was chosen")]
    score: Annotated[float, msgspec.Meta(ge=0)]


COMPLETED_WEIGHT = 3
APPLIED_WEIGHT = 1

# $1 the caller, $2 how many. `work` is the caller's history; `sk` and `cat` its weighted profile.
_RANKED = f"""
WITH work AS (
    SELECT g.skills, g.category, {APPLIED_WEIGHT} AS w, 'applied' AS source
      FROM applications a JOIN gigs g ON g.id = a.gig_id WHERE a.doer_id = $1
    UNION ALL
    SELECT g.skills, g.category, {COMPLETED_WEIGHT}, 'completed'
      FROM orders o JOIN gigs g ON g.id = o.gig_id WHERE o.doer_id = $1 AND o.status = 'completed'
), sk AS (
    SELECT s AS skill, sum(w) AS w, bool_or(source = 'completed') AS done
      FROM work, unnest(skills) AS s GROUP BY s
), cat AS (
    SELECT category, sum(w) AS w FROM work GROUP BY category
), scored AS (
    SELECT {GIG_COLUMNS},
           coalesce((SELECT sum(sk.w) FROM sk WHERE sk.skill = ANY (g.skills)), 0)
             + coalesce((SELECT cat.w FROM cat WHERE cat.category = g.category), 0) / 2.0 AS score,
           coalesce((SELECT array_agg(sk.skill ORDER BY sk.w DESC, sk.skill) FROM sk
                      WHERE sk.skill = ANY (g.skills)), '{{}}') AS matched,
           coalesce((SELECT bool_or(sk.done) FROM sk WHERE sk.skill = ANY (g.skills)), false) AS from_done,
           EXISTS (SELECT 1 FROM cat WHERE cat.category = g.category) AS same_category
      FROM gigs g
     WHERE g.status = 'open' AND g.hidden_at IS NULL AND g.client_id <> $1
       AND NOT EXISTS (SELECT 1 FROM applications a WHERE a.gig_id = g.id AND a.doer_id = $1)
       AND (g.skills && (SELECT coalesce(array_agg(skill), '{{}}') FROM sk)
            OR g.category IN (SELECT category FROM cat))
)
SELECT * FROM scored ORDER BY score DESC, boosted_now DESC, created_at DESC, id LIMIT $2
"""

_FILL = f"""
SELECT {GIG_COLUMNS} FROM gigs g
 WHERE g.status = 'open' AND g.hidden_at IS NULL AND g.client_id <> $1 AND NOT (g.id = ANY ($3::uuid[]))
   AND NOT EXISTS (SELECT 1 FROM applications a WHERE a.gig_id = g.id AND a.doer_id = $1)
 ORDER BY coalesce(g.boosted_until > now(), false) DESC, g.created_at DESC, g.id LIMIT $2
"""


def _reason(row: asyncpg.Record) -> str:
    matched = list(row["matched"])
    if matched:
        where = "work you completed" if row["from_done"] else "gigs you applied to"
        return f"Needs {', '.join(matched[:5])}, skills from {where}."
    return f"In {row['category']}, a category you have worked in."


def _item(row: asyncpg.Record, reason: str, score: float) -> RecommendedGig:
    return load(RecommendedGig, row, isBoosted=bool(row["boosted_now"]), reason=reason, score=score)


async def recommend(conn: Conn, user_id: str, limit: int) -> list[RecommendedGig]:
    """Up to `limit` open gigs for `user_id`, best first, each with its `reason` and `score`."""
    items: list[RecommendedGig] = []
    for row in await conn.fetch(_RANKED, user_id, limit):
        items.append(_item(row, _reason(row), float(row["score"])))
    if len(items) < limit:
        seen = [i.id for i in items]
        for row in await conn.fetch(_FILL, user_id, limit - len(items), seen):
            reason = "Boosted by its client." if row["boosted_now"] else "New on gigwire."
            items.append(_item(row, reason, 0.0))
    return items


@routes.get(
    "/api/gigs/recommended",
    summary="Open gigs ranked from the caller's past applications and completed work",
    auth=True,
    response=list[RecommendedGig],
    meta={"limit": Annotated[int, msgspec.Meta(ge=1)]},
    parameters=(
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 50},
            "description": "default 20",
        },
    ),
    errors=(400,),
)
async def recommended(request: web.Request) -> web.Response:
    """Open gigs ranked for the caller (see the module's docstring), each with its reason."""
    claims = require_user(request)
    limit = query_int(request, "limit", 20, 1, 50)
    async with request.app[POOL].acquire() as conn:
        items = await recommend(conn, claims.user_id, limit)
    return ok(items, limit=limit)
