"""The ID verification queue end to end: a user submits a document over REST, an admin approves
or rejects it over REST; the user's idVerified flag, the notification (inbox and feed) and the
audit row follow in the decision's transaction; two admins deciding at once: exactly one wins."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.admin.conftest import People
from tests.media.conftest import uploaded


async def _submit(client: TestClient[Any, Any], people: People, who: Any) -> dict[str, Any]:
    document = await uploaded(client, who, "id_document")  # POST /api/media
    r = await client.post(
        "/api/users/me/id-verification", json={"documentMediaId": document["id"]}, headers=who.headers
    )
    body = await r.json()
    assert r.status == 201, body
    data: dict[str, Any] = body["data"]
    return data


async def test_submit_approve(client: TestClient[Any, Any], pool: asyncpg.Pool, people: People) -> None:
    sub = await _submit(client, people, people.alice)
    assert sub["status"] == "pending" and sub["userId"] == people.alice.id
    r = await client.get(f"/api/users/{people.alice.id}", headers=people.bob.headers)
    trust_before = (await r.json())["data"]
    assert "id_verified" not in trust_before["badges"]
    another = await uploaded(client, people.alice, "id_document")
    r = await client.post(
        "/api/users/me/id-verification", json={"documentMediaId": another["id"]}, headers=people.alice.headers
    )
    assert r.status == 409
    r = await client.get("/api/admin/id-verifications?status=pending", headers=people.admin.headers)
    assert sub["id"] in [v["id"] for v in (await r.json())["data"]]
    r = await client.post(
        f"/api/admin/id-verifications/{sub['id']}/approve", json={}, headers=people.admin.headers
    )
    body = await r.json()
    assert r.status == 200 and body["data"]["status"] == "approved", body
    r = await client.get("/api/users/me", headers=people.alice.headers)
    assert (await r.json())["data"]["idVerified"] is True
    # A verified ID is an input of the trust rule: recomputed in the approval's transaction.
    r = await client.get(f"/api/users/{people.alice.id}", headers=people.bob.headers)
    trust_after = (await r.json())["data"]
    assert "id_verified" in trust_after["badges"]
    assert trust_after["trustScore"] > trust_before["trustScore"]
    r = await client.get("/api/notifications", headers=people.alice.headers)
    notes = (await r.json())["data"]
    assert [n["data"]["event"] for n in notes if n["type"] == "system"] == ["id_verified"]
    r = await client.get("/api/feed?sinceSeq=0", headers=people.alice.headers)
    feed = [i["data"] for i in (await r.json())["data"]["items"] if i["type"] == "NOTIFICATION"]
    assert [n["data"]["event"] for n in feed] == ["id_verified"], feed
    audit = await pool.fetchrow("SELECT * FROM admin_audit WHERE target_id = $1", sub["id"])
    assert audit["action"] == "id_verification.approve" and str(audit["actor_id"]) == people.admin.id
    assert audit["before"]["idVerified"] is False and audit["after"]["idVerified"] is True
    # Decided once only; a verified user cannot submit again.
    r = await client.post(
        f"/api/admin/id-verifications/{sub['id']}/reject", json={"reason": "x"}, headers=people.admin.headers
    )
    assert r.status == 409
    another = await uploaded(client, people.alice, "id_document")
    r = await client.post(
        "/api/users/me/id-verification", json={"documentMediaId": another["id"]}, headers=people.alice.headers
    )
    assert r.status == 409


async def test_reject_with_reason_then_resubmit(
    client: TestClient[Any, Any], pool: asyncpg.Pool, people: People
) -> None:
    sub = await _submit(client, people, people.bob)
    r = await client.post(
        f"/api/admin/id-verifications/{sub['id']}/reject", json={}, headers=people.admin.headers
    )
    assert r.status == 400  # a rejection needs its reason
    r = await client.post(
        f"/api/admin/id-verifications/{sub['id']}/reject",
        json={"reason": "blurry photo"},
        headers=people.admin.headers,
    )
    assert r.status == 200 and (await r.json())["data"]["reason"] == "blurry photo"
    assert await pool.fetchval("SELECT id_verified FROM users WHERE id = $1", people.bob.id) is False
    r = await client.get("/api/notifications", headers=people.bob.headers)
    notes = [n for n in (await r.json())["data"] if n["type"] == "system"]
    assert notes[0]["data"]["event"] == "id_verification_rejected" and "blurry photo" in notes[0]["body"]
    again = await _submit(client, people, people.bob)
    r = await client.get("/api/users/me/id-verification", headers=people.bob.headers)
    assert (await r.json())["data"]["id"] == again["id"]


async def test_two_admins_decide_at_once(
    client: TestClient[Any, Any], pool: asyncpg.Pool, people: People
) -> None:
    sub = await _submit(client, people, people.alice)
    results = await asyncio.gather(
        client.post(
            f"/api/admin/id-verifications/{sub['id']}/approve", json={}, headers=people.admin.headers
        ),
        client.post(
            f"/api/admin/id-verifications/{sub['id']}/reject",
            json={"reason": "no"},
            headers=people.other_admin.headers,
        ),
    )
    assert sorted(r.status for r in results) == [200, 409]
    assert await pool.fetchval("SELECT count(*) FROM admin_audit WHERE target_id = $1", sub["id"]) == 1
    notes = await pool.fetchval(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND type = 'system'", people.alice.id
    )
    assert notes == 1


async def test_bad_submissions(client: TestClient[Any, Any], pool: asyncpg.Pool, people: People) -> None:
    for body in (
        {},
        {"documentMediaId": "nope"},
        {"documentMediaId": 5},
        {"documentMediaId": str(uuid.uuid4()), "x": 1},
    ):
        r = await client.post("/api/users/me/id-verification", json=body, headers=people.alice.headers)
        assert r.status == 400, body
    r = await client.post("/api/users/me/id-verification", json={"documentMediaId": str(uuid.uuid4())})
    assert r.status == 401
    # Only the caller's own upload of kind id_document: 404 for anything else.
    bobs = await uploaded(client, people.bob, "id_document")
    avatar = await uploaded(client, people.alice, "avatar")
    for media_id in (str(uuid.uuid4()), bobs["id"], avatar["id"]):
        r = await client.post(
            "/api/users/me/id-verification", json={"documentMediaId": media_id}, headers=people.alice.headers
        )
        assert r.status == 404, await r.text()
    assert (
        await pool.fetchval("SELECT count(*) FROM id_verifications WHERE user_id = $1", people.alice.id) == 0
    )
