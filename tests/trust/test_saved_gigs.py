"""Saved gigs and category counts over HTTP against real PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from hub.settings import Settings
from rest.gig_search import CATEGORIES
from tests.factories import make_user
from tests.market.conftest import create_gig

NO_GIG = "00000000-0000-0000-0000-000000000000"


async def test_save_list_unsave(client: TestClient[Any, Any], pool: asyncpg.Pool, settings: Settings) -> None:
    owner = await make_user(pool, settings)
    user = await make_user(pool, settings)
    other = await make_user(pool, settings)
    gigs = [await create_gig(client, owner, title=f"Saved gig number {i}") for i in range(3)]
    for gig in gigs:
        r = await client.post(f"/api/gigs/{gig['id']}/save", headers=user.headers)
        assert r.status == 200, await r.text()
        state = (await r.json())["data"]
        assert state["gigId"] == gig["id"] and state["saved"] is True
    # Saving again changes nothing, even at once.
    first = (await (await client.post(f"/api/gigs/{gigs[0]['id']}/save", headers=user.headers)).json())[
        "data"
    ]
    again = await asyncio.gather(
        *(client.post(f"/api/gigs/{gigs[0]['id']}/save", headers=user.headers) for _ in range(4))
    )
    assert {r.status for r in again} == {200}
    assert {(await r.json())["data"]["savedAt"] for r in again} == {first["savedAt"]}
    assert await pool.fetchval("SELECT count(*) FROM saved_gigs WHERE user_id = $1", user.id) == 3

    r = await client.get("/api/gigs/saved?limit=2", headers=user.headers)
    body = await r.json()
    assert (body["total"], body["page"], body["limit"]) == (3, 1, 2)
    assert [x["gig"]["id"] for x in body["data"]] == [gigs[2]["id"], gigs[1]["id"]]  # newest save first
    assert body["data"][0]["gig"]["title"] == "Saved gig number 2"
    r = await client.get("/api/gigs/saved?limit=2&page=2", headers=user.headers)
    assert [x["gig"]["id"] for x in (await r.json())["data"]] == [gigs[0]["id"]]
    r = await client.get("/api/gigs/saved", headers=other.headers)
    assert (await r.json())["total"] == 0  # each user's own list

    r = await client.delete(f"/api/gigs/{gigs[1]['id']}/save", headers=user.headers)
    assert r.status == 200 and (await r.json())["data"] == {
        "gigId": gigs[1]["id"],
        "saved": False,
        "savedAt": None,
    }
    r = await client.delete(f"/api/gigs/{gigs[1]['id']}/save", headers=user.headers)
    assert r.status == 404
    r = await client.delete(f"/api/gigs/{gigs[0]['id']}/save", headers=other.headers)
    assert r.status == 404
    # A deleted gig leaves the list.
    assert (await client.delete(f"/api/gigs/{gigs[2]['id']}", headers=owner.headers)).status == 200
    r = await client.get("/api/gigs/saved", headers=user.headers)
    assert [x["gig"]["id"] for x in (await r.json())["data"]] == [gigs[0]["id"]]


async def test_saved_gig_refusals(
    client: TestClient[Any, Any], pool: asyncpg.Pool, settings: Settings
) -> None:
    owner = await make_user(pool, settings)
    gig = await create_gig(client, owner)
    for method, path in (
        ("POST", f"/api/gigs/{gig['id']}/save"),
        ("DELETE", f"/api/gigs/{gig['id']}/save"),
        ("GET", "/api/gigs/saved"),
    ):
        r = await client.request(method, path)
        assert r.status == 401, (method, path)
    r = await client.post(f"/api/gigs/{NO_GIG}/save", headers=owner.headers)
    assert r.status == 404
    r = await client.post("/api/gigs/not-a-gig/save", headers=owner.headers)
    assert r.status == 404
    for query in ("limit=0", "limit=101", "page=0", "page=x"):
        r = await client.get(f"/api/gigs/saved?{query}", headers=owner.headers)
        assert r.status == 400, query
    assert await pool.fetchval("SELECT count(*) FROM saved_gigs WHERE user_id = $1", owner.id) == 0


async def counts(client: TestClient[Any, Any]) -> dict[str, int]:
    r = await client.get("/api/categories")
    assert r.status == 200, await r.text()
    return {c["category"]: c["openGigs"] for c in (await r.json())["data"]}


async def test_categories_count_open_gigs(
    client: TestClient[Any, Any], pool: asyncpg.Pool, settings: Settings
) -> None:
    owner = await make_user(pool, settings)
    before = await counts(client)
    assert list(before) == list(CATEGORIES)
    assert before == {
        r["category"]: r["n"]
        for r in await pool.fetch(
            "SELECT c AS category, (SELECT count(*) FROM gigs WHERE category = c AND status = 'open') AS n"
            " FROM unnest($1::text[]) AS c",
            list(CATEGORIES),
        )
    }
    await create_gig(client, owner, category="tutoring")
    await create_gig(client, owner, category="tutoring")
    closed = await create_gig(client, owner, category="tutoring")
    assert (await client.post(f"/api/gigs/{closed['id']}/close", headers=owner.headers)).status == 200
    await create_gig(client, owner, category="music")
    after = await counts(client)
    assert after["tutoring"] == before["tutoring"] + 2
    assert after["music"] == before["music"] + 1
    assert {k: v for k, v in after.items() if k not in ("tutoring", "music")} == {
        k: v for k, v in before.items() if k not in ("tutoring", "music")
    }
