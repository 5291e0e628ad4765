"""Public profiles: GET /api/users/{id}, and `profiles`, which other routes use to embed the same
shape (the applicants listed to a gig's owner, rest/applications.py).

A public profile holds only what any signed-in user may see about another: never the phone, the
email, money, the ID document or the roles. `PublicProfile` is the whole list of what goes out
(tests/trust/test_profiles.py enumerates it), built by a query that selects nothing else."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated

import msgspec
from aiohttp import web

from domain.trust import BADGES
from hub.keys import POOL
from hub.model import EpochMs, Uuid
from rest.api import Routes, Wire, load, ok
from rest.errors import ApiError
from rest.http import path_uuid, require_user

if TYPE_CHECKING:
    from hub.db import Conn

routes = Routes("users")

SKILLS_MAX = 20

_BADGE_LIST = "; ".join(f"{badge}: {why}" for badge, why in BADGES.items())


class PublicProfile(Wire):
    """What every signed-in user may see of a user. Never phone, email, balances, earnings, the ID
    document or roles."""

    id: Uuid
    name: str | None
    avatar_url: str | None
    bio: str | None
    university: str | None
    skills: Annotated[
        list[str],
        msgspec.Meta(
            description="the skills of the gigs this user completed as the doer, most frequent first"
            f" (at most {SKILLS_MAX})"
        ),
    ]
    rating: Annotated[float, msgspec.Meta(ge=0, le=5, description="average stars received; 0 until reviewed")]
    review_count: Annotated[int, msgspec.Meta(ge=0, description="reviews received")]
    trust_score: Annotated[int, msgspec.Meta(ge=0, le=100, description="README, 'Reviews and trust'")]
    badges: Annotated[list[str], msgspec.Meta(description=f"badge ids earned: {_BADGE_LIST}")]
    completed_gigs: Annotated[int, msgspec.Meta(ge=0, description="orders completed as the doer")]
    member_since: Annotated[EpochMs, msgspec.Meta(description="when the account was created")]
    phone_verified: bool
    email_verified: bool
    id_verified: bool


_COLUMNS = (
    "id::text AS id, name, avatar_url, bio, university, rating::float8 AS rating, review_count,"
    " trust_score, badges, completed_gigs, created_at AS member_since, phone_verified, email_verified,"
    " id_verified"
)


async def profiles(conn: Conn, user_ids: Iterable[str]) -> dict[str, PublicProfile]:
    """User id -> public profile of each existing user among `user_ids` (two queries whatever the
    count)."""
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return {}
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM users WHERE id = ANY($1::uuid[])", ids)
    skills: dict[str, list[str]] = {}
    for r in await conn.fetch(
        "SELECT o.doer_id::text AS doer_id, s.skill, count(*) AS n FROM orders o"
        " JOIN gigs g ON g.id = o.gig_id CROSS JOIN LATERAL unnest(g.skills) AS s(skill)"
        " WHERE o.status = 'completed' AND o.doer_id = ANY($1::uuid[])"
        " GROUP BY 1, 2 ORDER BY 1, n DESC, s.skill",
        ids,
    ):
        found = skills.setdefault(r["doer_id"], [])
        if len(found) < SKILLS_MAX:
            found.append(r["skill"])
    return {r["id"]: load(PublicProfile, r, skills=skills.get(r["id"], [])) for r in rows}


@routes.get(
    "/api/users/{id}",
    summary="A user's public profile",
    description="Any signed-in user may read it. Only public fields: name, avatar, bio, university,"
    " skills, rating, trust score, badges, completed gigs, member since and the verification flags."
    " /api/users/me is the caller's own full profile.",
    auth=True,
    response=PublicProfile,
    errors=(404,),
)
async def get_profile(request: web.Request) -> web.Response:
    """The public profile of the user named by the path."""
    require_user(request)
    user_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn:
        found = (await profiles(conn, [user_id])).get(user_id)
    if found is None:
        raise ApiError("not_found", f"No user {user_id}.")
    return ok(found)
