"""Admin users: search, private view, ban and unban through REST; the ban refuses the user's token
on every route, at login and at refresh, and each action writes one audit row in its transaction."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from tests.admin.conftest import People
from tests.rest.conftest import CapturingSender, api, login, sender, settings, skip_resend_gap
from tests.services import Services

__all__ = ["api", "sender", "settings"]  # the REST tests' fixtures, used here too


async def test_search_and_private_view(client: TestClient[Any, Any], people: People) -> None:
    r = await client.get(f"/api/admin/users?q={people.tag}", headers=people.admin.headers)
    body = await r.json()
    assert r.status == 200, body
    assert [u["id"] for u in body["data"]] == [people.alice.id]
    assert body["total"] == 1
    r = await client.get(f"/api/admin/users?q={people.bob.phone[1:]}", headers=people.admin.headers)
    assert [u["id"] for u in (await r.json())["data"]] == [people.bob.id]
    r = await client.get("/api/admin/users?q=%25", headers=people.admin.headers)  # a literal %
    assert (await r.json())["data"] == []
    r = await client.get(f"/api/admin/users/{people.alice.id}", headers=people.admin.headers)
    data = (await r.json())["data"]
    assert data["phone"] == people.alice.phone and data["bannedAt"] is None and "walletBalance" in data
    r = await client.get(
        "/api/admin/users/00000000-0000-0000-0000-000000000000", headers=people.admin.headers
    )
    assert r.status == 404


async def test_ban_refuses_everything_and_is_audited(
    client: TestClient[Any, Any], pool: asyncpg.Pool, people: People
) -> None:
    r = await client.get("/api/users/me", headers=people.alice.headers)
    assert r.status == 200
    r = await client.post(
        f"/api/admin/users/{people.alice.id}/ban", json={"reason": "fraud"}, headers=people.admin.headers
    )
    body = await r.json()
    assert r.status == 200, body
    assert body["data"]["bannedAt"] is not None and body["data"]["banReason"] == "fraud"
    for method, path in (("GET", "/api/users/me"), ("GET", "/api/orders"), ("GET", "/api/gigs")):
        r = await client.request(method, path, headers=people.alice.headers)
        err = await r.json()
        assert r.status == 403 and err["error"]["details"] == {"reason": "banned"}, (path, err)
    # An admin banned is refused on admin routes too.
    r = await client.post(
        f"/api/admin/users/{people.other_admin.id}/ban",
        json={"reason": "rogue"},
        headers=people.admin.headers,
    )
    assert r.status == 200
    r = await client.get("/api/admin/users", headers=people.other_admin.headers)
    assert r.status == 403 and (await r.json())["error"]["details"]["reason"] == "banned"
    # Twice: 409, nothing more written.
    r = await client.post(
        f"/api/admin/users/{people.alice.id}/ban", json={"reason": "again"}, headers=people.admin.headers
    )
    assert r.status == 409
    rows = await pool.fetch("SELECT * FROM admin_audit WHERE target_id = $1 ORDER BY id", people.alice.id)
    assert [(r["action"], r["actor_id"].__str__(), r["reason"]) for r in rows] == [
        ("user.ban", people.admin.id, "fraud")
    ]
    assert rows[0]["before"] == {"bannedAt": None, "banReason": None}
    assert rows[0]["after"]["banReason"] == "fraud"
    revoked = await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE event_type = 'SESSION_REVOKED' AND payload->>'userId' = $1"
        " AND payload->>'reason' = 'banned'",
        people.alice.id,
    )
    assert revoked == 1
    # Unban: the token works again; audited.
    r = await client.post(f"/api/admin/users/{people.alice.id}/unban", json={}, headers=people.admin.headers)
    assert r.status == 200 and (await r.json())["data"]["bannedAt"] is None
    r = await client.get("/api/users/me", headers=people.alice.headers)
    assert r.status == 200
    r = await client.post(f"/api/admin/users/{people.alice.id}/unban", json={}, headers=people.admin.headers)
    assert r.status == 409
    r = await client.get(
        f"/api/admin/audit?targetType=user&targetId={people.alice.id}", headers=people.admin.headers
    )
    entries = (await r.json())["data"]
    assert [e["action"] for e in entries] == ["user.unban", "user.ban"]


async def test_ban_refuses_login_and_refresh(
    api: TestClient[Any, Any], sender: CapturingSender, services: Services, pool: asyncpg.Pool, people: People
) -> None:
    phone = people.bob.phone
    data = await login(api, sender, phone)
    await pool.execute("UPDATE users SET banned_at = now() WHERE id = $1", people.bob.id)
    r = await api.post("/api/auth/refresh", json={"refreshToken": data["refreshToken"]})
    assert r.status == 403 and (await r.json())["error"]["details"]["reason"] == "banned"
    await skip_resend_gap(services, phone)
    r = await api.post("/api/auth/send-otp", json={"phone": phone})
    assert r.status == 200
    r = await api.post("/api/auth/verify-otp", json={"phone": phone, "otp": sender.last(phone)})
    assert r.status == 403 and (await r.json())["error"]["details"]["reason"] == "banned"
    # The refused login did not use the code up.
    assert await pool.fetchval("SELECT used_at FROM otp_codes WHERE phone = $1", phone) is None


@pytest.mark.parametrize(
    "body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 2001}, {"reason": 5}]
)
async def test_ban_bad_bodies(
    client: TestClient[Any, Any], pool: asyncpg.Pool, people: People, body: Any
) -> None:
    r = await client.post(f"/api/admin/users/{people.alice.id}/ban", json=body, headers=people.admin.headers)
    assert r.status == 400, await r.text()
    assert await pool.fetchval("SELECT banned_at FROM users WHERE id = $1", people.alice.id) is None


async def test_audit_is_append_only(pool: asyncpg.Pool, people: People) -> None:
    await pool.execute(
        "INSERT INTO admin_audit (actor_id, action, target_type, target_id)"
        " VALUES ($1, 'test.x', 'user', 'x')",
        people.admin.id,
    )
    for sql in ("UPDATE admin_audit SET reason = 'y'", "DELETE FROM admin_audit", "TRUNCATE admin_audit"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pool.execute(sql)


async def test_ban_racing_refreshes(
    api: TestClient[Any, Any], sender: CapturingSender, pool: asyncpg.Pool, people: People
) -> None:
    """A ban and the user's refreshes at once: no deadlock (both lock refresh tokens before the user
    row), the ban commits, and whatever token a refresh won before it is refused after it."""
    data = await login(api, sender, people.bob.phone)
    refreshes = [api.post("/api/auth/refresh", json={"refreshToken": data["refreshToken"]}) for _ in range(4)]
    ban = api.post(
        f"/api/admin/users/{people.bob.id}/ban", json={"reason": "race"}, headers=people.admin.headers
    )
    results = await asyncio.gather(ban, *refreshes)
    assert results[0].status == 200, await results[0].text()
    won = [(await r.json())["data"] for r in results[1:] if r.status == 200]
    assert len(won) <= 1 and all(r.status in (200, 401, 403) for r in results[1:])
    for tokens in won:
        r = await api.post("/api/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
        assert r.status in (401, 403), await r.text()
        r = await api.get("/api/users/me", headers={"Authorization": f"Bearer {tokens['token']}"})
        assert r.status == 403
