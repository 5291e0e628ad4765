"""Gig CRUD: create, read (counting views), update, delete, close, reopen, my-gigs; every bad input
gets its error and changes nothing; the authorization matrix of the owner-only routes."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from hub.settings import Settings
from tests.factories import TestUser, make_order, make_user
from tests.market.conftest import create_gig, future_ms, gig_body, gig_row

GIG_KEYS = {
    "id", "clientId", "title", "description", "category", "skills", "budgetType", "budgetMin", "budgetMax",
    "currency", "deadline", "attachments", "status", "applicationsCount", "viewsCount", "isBoosted",
    "boostedUntil", "createdAt", "updatedAt",
}  # fmt: skip


async def test_create_and_read_gig(client: Any, owner: TestUser, stranger: TestUser) -> None:
    deadline = future_ms(3)
    gig = await create_gig(
        client,
        owner,
        skills=["Photoshop", "illustrator", "photoshop"],
        deadline=deadline,
        attachments=[{"url": "https://files.example/brief.pdf", "name": "brief.pdf", "size": 1200}],
    )
    assert set(gig) == GIG_KEYS
    assert gig["clientId"] == owner.id
    assert gig["skills"] == ["photoshop", "illustrator"]
    assert gig["status"] == "open"
    assert gig["budgetType"] == "fixed"
    assert gig["currency"] == "INR"
    assert gig["deadline"] == deadline
    assert gig["isBoosted"] is False and gig["boostedUntil"] is None
    assert gig["applicationsCount"] == 0 and gig["viewsCount"] == 0
    assert gig["attachments"][0]["name"] == "brief.pdf"

    anonymous = await client.get(f"/api/gigs/{gig['id']}")
    assert anonymous.status == 200
    assert (await anonymous.json())["data"]["viewsCount"] == 1
    seen = await client.get(f"/api/gigs/{gig['id']}", headers=stranger.headers)
    assert (await seen.json())["data"]["viewsCount"] == 2
    # the owner looking at their own gig is not a view
    own = await client.get(f"/api/gigs/{gig['id']}", headers=owner.headers)
    assert (await own.json())["data"]["viewsCount"] == 2


async def test_get_unknown_or_malformed_gig_is_404(client: Any) -> None:
    for gig_id in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        resp = await client.get(f"/api/gigs/{gig_id}")
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"


async def test_bad_token_on_public_routes_is_401(client: Any) -> None:
    resp = await client.get("/api/gigs", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": "ab"}, "title"),
        ({"title": 5}, "title"),
        ({"title": "bad\u0000title"}, "title"),
        ({"description": ""}, "description"),
        ({"category": "astrology"}, "category"),
        ({"skills": "photoshop"}, "skills"),
        ({"skills": [""]}, "skills"),
        ({"skills": ["x" * 51]}, "skills"),
        ({"budgetType": "barter"}, "budgetType"),
        ({"budgetMin": 0}, "budgetMin"),
        ({"budgetMin": 1.5}, "budgetMin"),
        ({"budgetMin": "100"}, "budgetMin"),
        ({"budgetMin": 200_000, "budgetMax": 100_000}, "budgetMax"),
        ({"deadline": 1_000}, "deadline"),
        ({"deadline": True}, "deadline"),
        ({"attachments": [{"url": "ftp://x/y"}]}, "attachments"),
        ({"attachments": [{"url": "https://x/y", "extra": 1}]}, "attachments"),
        ({"attachments": [{"url": "https://x/y"}] * 11}, "attachments"),
        ({"status": "completed"}, "status"),
        ({"currency": "USD"}, "currency"),
    ],
)
async def test_create_bad_field_is_400_and_creates_nothing(
    client: Any, pool: asyncpg.Pool, owner: TestUser, change: dict[str, Any], field: str
) -> None:
    resp = await client.post("/api/gigs", json=gig_body(**change), headers=owner.headers)
    body = await resp.json()
    assert resp.status == 400, body
    assert field in body["error"]["details"]["fields"]
    assert await pool.fetchval("SELECT count(*) FROM gigs WHERE client_id = $1", owner.id) == 0


async def test_create_missing_fields_and_bad_json(client: Any, pool: asyncpg.Pool, owner: TestUser) -> None:
    resp = await client.post("/api/gigs", json={}, headers=owner.headers)
    fields = (await resp.json())["error"]["details"]["fields"]
    assert resp.status == 400
    assert {"title", "description", "category", "budgetMin", "budgetMax", "deadline"} <= set(fields)
    resp = await client.post("/api/gigs", data=b"{nope", headers=owner.headers)
    assert resp.status == 400
    resp = await client.post("/api/gigs", json=[1], headers=owner.headers)
    assert resp.status == 400
    assert await pool.fetchval("SELECT count(*) FROM gigs WHERE client_id = $1", owner.id) == 0


async def test_create_needs_token_and_client_role(client: Any, pool: asyncpg.Pool, doer: TestUser) -> None:
    resp = await client.post("/api/gigs", json=gig_body())
    assert resp.status == 401
    resp = await client.post("/api/gigs", json=gig_body(), headers=doer.headers)
    assert resp.status == 403
    assert await pool.fetchval("SELECT count(*) FROM gigs WHERE client_id = $1", doer.id) == 0


async def test_patch_gig(client: Any, pool: asyncpg.Pool, owner: TestUser) -> None:
    gig = await create_gig(client, owner)
    resp = await client.patch(
        f"/api/gigs/{gig['id']}",
        json={"title": "A sharper logo", "budgetMax": 200_000, "skills": ["Figma"]},
        headers=owner.headers,
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert body["data"]["title"] == "A sharper logo"
    assert body["data"]["budgetMax"] == 200_000
    assert body["data"]["skills"] == ["figma"]
    assert body["data"]["updatedAt"] >= gig["updatedAt"]
    # the new title is searchable at once (the tsvector is generated)
    found = await client.get("/api/gigs", params={"search": "sharper", "skills": "figma"})
    assert gig["id"] in [g["id"] for g in (await found.json())["data"]]


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"title": "x"},
        {"budgetMax": 10},  # below the stored budgetMin 50000
        {"budgetMin": 999_999},  # above the stored budgetMax 150000
        {"status": "completed"},
        {"clientId": "00000000-0000-0000-0000-000000000000"},
        {"deadline": 0},
    ],
)
async def test_patch_bad_input_is_400_and_changes_nothing(
    client: Any, pool: asyncpg.Pool, owner: TestUser, change: dict[str, Any]
) -> None:
    gig = await create_gig(client, owner)
    before = await gig_row(pool, gig["id"])
    resp = await client.patch(f"/api/gigs/{gig['id']}", json=change, headers=owner.headers)
    assert resp.status == 400, await resp.json()
    assert await gig_row(pool, gig["id"]) == before


async def test_close_and_reopen(client: Any, pool: asyncpg.Pool, owner: TestUser) -> None:
    gig = await create_gig(client, owner)
    resp = await client.post(f"/api/gigs/{gig['id']}/reopen", headers=owner.headers)
    assert resp.status == 409  # only a closed gig reopens
    resp = await client.post(f"/api/gigs/{gig['id']}/close", headers=owner.headers)
    assert resp.status == 200
    assert (await resp.json())["data"]["status"] == "closed"
    resp = await client.post(f"/api/gigs/{gig['id']}/close", headers=owner.headers)
    assert resp.status == 409
    assert (await gig_row(pool, gig["id"]) or {})["status"] == "closed"
    resp = await client.post(f"/api/gigs/{gig['id']}/reopen", headers=owner.headers)
    assert resp.status == 200
    assert (await resp.json())["data"]["status"] == "open"


async def test_in_progress_gig_is_not_edited(client: Any, pool: asyncpg.Pool, owner: TestUser) -> None:
    gig = await create_gig(client, owner)
    await pool.execute("UPDATE gigs SET status = 'in_progress' WHERE id = $1", gig["id"])
    resp = await client.patch(f"/api/gigs/{gig['id']}", json={"title": "New title"}, headers=owner.headers)
    assert resp.status == 409
    resp = await client.post(f"/api/gigs/{gig['id']}/close", headers=owner.headers)
    assert resp.status == 409
    assert (await gig_row(pool, gig["id"]) or {})["title"] == gig["title"]


async def test_delete_gig(client: Any, pool: asyncpg.Pool, owner: TestUser, doer: TestUser) -> None:
    gig = await create_gig(client, owner)
    await client.post(
        f"/api/gigs/{gig['id']}/applications", json={"proposal": "me", "bidAmount": 1}, headers=doer.headers
    )
    resp = await client.delete(f"/api/gigs/{gig['id']}", headers=owner.headers)
    assert resp.status == 200
    assert (await resp.json())["data"] == {"id": gig["id"], "deleted": True}
    assert await gig_row(pool, gig["id"]) is None
    assert await pool.fetchval("SELECT count(*) FROM applications WHERE gig_id = $1", gig["id"]) == 0
    resp = await client.delete(f"/api/gigs/{gig['id']}", headers=owner.headers)
    assert resp.status == 404


async def test_delete_refused_once_an_order_exists(
    client: Any, pool: asyncpg.Pool, settings: Settings, owner: TestUser, doer: TestUser
) -> None:
    await make_order(pool, owner, doer)
    gig_id = await pool.fetchval(
        "SELECT id::text FROM gigs WHERE client_id = $1 ORDER BY created_at DESC LIMIT 1", owner.id
    )
    resp = await client.delete(f"/api/gigs/{gig_id}", headers=owner.headers)
    assert resp.status == 409
    assert await gig_row(pool, gig_id) is not None


async def test_my_gigs(client: Any, pool: asyncpg.Pool, settings: Settings) -> None:
    me = await make_user(pool, settings)
    first = await create_gig(client, me, title="First gig of mine")
    second = await create_gig(client, me, title="Second gig of mine")
    await client.post(f"/api/gigs/{first['id']}/close", headers=me.headers)
    other = await make_user(pool, settings)
    await create_gig(client, other)
    resp = await client.get("/api/gigs/my-gigs", headers=me.headers)
    body = await resp.json()
    assert resp.status == 200
    assert [g["id"] for g in body["data"]] == [second["id"], first["id"]]  # every status, newest first
    assert (body["page"], body["limit"], body["total"]) == (1, 20, 2)
    resp = await client.get("/api/gigs/my-gigs", params={"status": "closed"}, headers=me.headers)
    assert [g["id"] for g in (await resp.json())["data"]] == [first["id"]]
    assert (await client.get("/api/gigs/my-gigs")).status == 401
    resp = await client.get("/api/gigs/my-gigs", params={"status": "lost"}, headers=me.headers)
    assert resp.status == 400


# Authorization matrix of the owner-only gig routes: anonymous 401, another user 403, owner 2xx.
OWNER_ROUTES = [
    ("patch", "", {"title": "Changed by someone"}),
    ("post", "/close", None),
    ("post", "/boost", {"days": 1}),
    ("delete", "", None),
    ("get", "/applications", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), OWNER_ROUTES)
async def test_owner_only_routes(
    client: Any,
    pool: asyncpg.Pool,
    owner: TestUser,
    stranger: TestUser,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    gig = await create_gig(client, owner)
    before = await gig_row(pool, gig["id"])
    url = f"/api/gigs/{gig['id']}{suffix}"
    headers = {"Idempotency-Key": f"k-{method}-{suffix}"}
    anonymous = await getattr(client, method)(url, json=body, headers=headers)
    assert anonymous.status == 401
    other = await getattr(client, method)(url, json=body, headers={**headers, **stranger.headers})
    assert other.status == 403, await other.json()
    assert (await other.json())["error"]["code"] == "forbidden"
    assert await gig_row(pool, gig["id"]) == before
    missing = f"/api/gigs/00000000-0000-0000-0000-000000000000{suffix}"
    gone = await getattr(client, method)(missing, json=body, headers={**headers, **owner.headers})
    assert gone.status == 404
