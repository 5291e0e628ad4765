"""Hiding a gig: it vanishes from GET /api/gigs, search, recommendations and GET /api/gigs/{id}
for everyone but its owner and admins, takes no applications, and comes back when unhidden."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.admin.conftest import People


async def _post_gig(client: TestClient[Any, Any], people: People) -> str:
    import time

    body = {
        "title": f"Poster {people.tag}",
        "description": f"A poster about {people.tag}",
        "category": "design",
        "skills": ["illustrator"],
        "budgetMin": 50_000,
        "budgetMax": 60_000,
        "deadline": int(time.time() * 1000) + 7 * 86_400_000,
    }
    r = await client.post("/api/gigs", json=body, headers=people.alice.headers)
    data = await r.json()
    assert r.status == 201, data
    gig_id: str = data["data"]["id"]
    return gig_id


async def _listed(client: TestClient[Any, Any], people: People, gig_id: str) -> dict[str, bool]:
    seen: dict[str, bool] = {}
    r = await client.get("/api/gigs?limit=100", headers=people.bob.headers)
    seen["list"] = gig_id in [g["id"] for g in (await r.json())["data"]]
    r = await client.get(f"/api/gigs?search={people.tag}", headers=people.bob.headers)
    seen["search"] = gig_id in [g["id"] for g in (await r.json())["data"]]
    r = await client.get(f"/api/gigs/{gig_id}", headers=people.bob.headers)
    seen["stranger"] = r.status == 200
    r = await client.get(f"/api/gigs/{gig_id}")
    seen["anonymous"] = r.status == 200
    r = await client.get(f"/api/gigs/{gig_id}", headers=people.alice.headers)
    seen["owner"] = r.status == 200
    r = await client.get(f"/api/gigs/{gig_id}", headers=people.admin.headers)
    seen["admin"] = r.status == 200
    r = await client.get("/api/gigs/my-gigs", headers=people.alice.headers)
    seen["my-gigs"] = gig_id in [g["id"] for g in (await r.json())["data"]]
    return seen


async def test_hide_and_unhide(client: TestClient[Any, Any], pool: asyncpg.Pool, people: People) -> None:
    gig_id = await _post_gig(client, people)
    everyone = {k: True for k in ("list", "search", "stranger", "anonymous", "owner", "admin", "my-gigs")}
    assert await _listed(client, people, gig_id) == everyone
    r = await client.post(f"/api/gigs/{gig_id}/save", headers=people.bob.headers)
    assert r.status == 200, await r.text()
    category = await client.get(f"/api/gigs/{gig_id}", headers=people.bob.headers)
    category_name = (await category.json())["data"]["category"]

    async def open_in_category() -> int:
        r = await client.get("/api/categories")
        return int(next(c["openGigs"] for c in (await r.json())["data"] if c["category"] == category_name))

    async def saved_by_bob() -> list[str]:
        r = await client.get("/api/gigs/saved", headers=people.bob.headers)
        return [s["gig"]["id"] for s in (await r.json())["data"]]

    counted = await open_in_category()
    assert await saved_by_bob() == [gig_id]
    r = await client.post(
        f"/api/admin/gigs/{gig_id}/hide", json={"reason": "spam"}, headers=people.admin.headers
    )
    body = await r.json()
    assert r.status == 200 and body["data"]["hiddenReason"] == "spam" and body["data"]["gig"]["id"] == gig_id
    hidden = {**everyone, "list": False, "search": False, "stranger": False, "anonymous": False}
    assert await _listed(client, people, gig_id) == hidden
    # Nor counted in its category, nor among what others saved, nor savable by them.
    assert await open_in_category() == counted - 1
    assert await saved_by_bob() == []
    r = await client.post(f"/api/gigs/{gig_id}/save", headers=people.bob.headers)
    assert r.status == 404
    apply = {"proposal": "I can do this well", "bidAmount": 55_000}
    r = await client.post(f"/api/gigs/{gig_id}/applications", json=apply, headers=people.bob.headers)
    assert r.status == 404, await r.text()
    r = await client.post(
        f"/api/admin/gigs/{gig_id}/hide", json={"reason": "again"}, headers=people.admin.headers
    )
    assert r.status == 409
    r = await client.get("/api/admin/gigs/hidden", headers=people.admin.headers)
    assert gig_id in [g["gig"]["id"] for g in (await r.json())["data"]]
    r = await client.post(f"/api/admin/gigs/{gig_id}/unhide", json={}, headers=people.admin.headers)
    assert r.status == 200 and (await r.json())["data"]["hiddenAt"] is None
    assert await _listed(client, people, gig_id) == everyone
    assert await open_in_category() == counted and await saved_by_bob() == [gig_id]
    actions = await pool.fetch("SELECT action FROM admin_audit WHERE target_id = $1 ORDER BY id", gig_id)
    assert [a["action"] for a in actions] == ["gig.hide", "gig.unhide"]
