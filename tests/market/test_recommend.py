"""GET /api/gigs/recommended: ranked from the skills of gigs the caller applied to and completed."""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.settings import Settings
from tests.factories import TestUser, make_user
from tests.market.conftest import apply, create_gig, marker


async def test_recommendations_follow_past_work(
    client: Any, pool: asyncpg.Pool, settings: Settings, owner: TestUser
) -> None:
    me = await make_user(pool, settings, roles=("doer",))
    a, b, c = marker(), marker(), marker()
    # history: applied to a gig needing a+b; completed an order on a gig needing c
    applied = await create_gig(client, owner, skills=[a, b], category="writing")
    await apply(client, me, applied["id"])
    done = await create_gig(client, owner, skills=[c], category="research")
    done_app = await apply(client, me, done["id"])
    await pool.execute("UPDATE applications SET status = 'accepted' WHERE id = $1", done_app["id"])
    await pool.execute(
        "INSERT INTO orders (gig_id, application_id, client_id, doer_id, amount, platform_fee, doer_payout,"
        " status, escrow_state) VALUES ($1, $2, $3, $4, 1000, 100, 900, 'completed', 'released')",
        done["id"],
        done_app["id"],
        owner.id,
        me.id,
    )
    await pool.execute("UPDATE gigs SET status = 'completed' WHERE id = $1", done["id"])
    # candidates
    only_a = await create_gig(client, owner, skills=[a], category="design")  # 1
    a_and_b = await create_gig(client, owner, skills=[a, b], category="design")  # 2
    only_c = await create_gig(client, owner, skills=[c], category="design")  # 4
    c_research = await create_gig(client, owner, skills=[c, a], category="research")  # 4 + 1 + 2
    own = await create_gig(client, await make_user(pool, settings), skills=[c])
    await pool.execute("UPDATE gigs SET client_id = $1 WHERE id = $2", me.id, own["id"])  # me's own gig

    resp = await client.get("/api/gigs/recommended", params={"limit": 50}, headers=me.headers)
    body = await resp.json()
    assert resp.status == 200, body
    items = body["data"]
    ranked = [g["id"] for g in items]
    assert ranked[:4] == [c_research["id"], only_c["id"], a_and_b["id"], only_a["id"]]
    assert applied["id"] not in ranked and done["id"] not in ranked  # applied to / not open
    assert own["id"] not in ranked  # never one's own gig
    first = items[0]
    # c: applied (1) + completed (3); a: 1; research: (1 + 3) / 2
    assert first["score"] == 7.0
    assert c in first["reason"] and "work you completed" in first["reason"]
    assert "gigs you applied to" in items[3]["reason"]
    # the rest of the list is filled with other open gigs, each with a reason
    assert all(isinstance(g["reason"], str) and g["reason"] for g in items)


async def test_recommendations_for_a_new_doer_and_bad_input(
    client: Any, pool: asyncpg.Pool, settings: Settings, owner: TestUser
) -> None:
    newcomer = await make_user(pool, settings, roles=("doer",))
    mine = await create_gig(client, owner)
    await pool.execute("UPDATE gigs SET client_id = $1 WHERE id = $2", newcomer.id, mine["id"])
    fresh = await create_gig(client, owner)
    resp = await client.get("/api/gigs/recommended", params={"limit": 5}, headers=newcomer.headers)
    body = await resp.json()
    assert resp.status == 200
    assert len(body["data"]) == 5 and body["limit"] == 5
    ids = [g["id"] for g in body["data"]]
    assert mine["id"] not in ids
    assert fresh["id"] in ids or all(g["isBoosted"] for g in body["data"])
    assert all(g["score"] == 0 for g in body["data"])
    assert (await client.get("/api/gigs/recommended")).status == 401
    bad = await client.get("/api/gigs/recommended", params={"limit": "51"}, headers=newcomer.headers)
    assert bad.status == 400
