"""A deleted user's access token over REST (issue 13 defect 7): every route answers 401 in the error
shape, never a 500, and nothing reaches the payment gateway for it. And the class fix: a write whose
user vanishes after the token was checked (a foreign-key violation) is a 401 too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from domain.gateway_sandbox import SandboxGateway
from hub.settings import Settings
from tests.factories import TestUser, make_user

Client = TestClient[Any, Any]
DEADLINE_MS = 1_900_000_000_000

GIG = {
    "title": "A logo for us",
    "description": "We need a logo for the shop.",
    "category": "design",
    "skills": ["photoshop"],
    "budgetMin": 1000,
    "budgetMax": 5000,
    "deadline": DEADLINE_MS,
}
WRITES = [
    ("POST", "/api/gigs", GIG),
    ("POST", "/api/gigs/{gig}/applications", {"proposal": "I can do it well.", "bidAmount": 2000}),
    ("POST", "/api/devices", {"token": "deleted-user-device", "platform": "android"}),
    (
        "POST",
        "/api/bank-accounts",
        {"holderName": "A B", "accountNumber": "123456789012", "ifsc": "HDFC0001234"},
    ),
    ("PUT", "/api/notifications/preferences", {"payment": {"push": False}}),
    ("PATCH", "/api/users/me", {"name": "Gone"}),
]
READS = [
    "/api/users/me",
    "/api/gigs",
    "/api/gigs/my-gigs",
    "/api/gigs/recommended",
    "/api/applications/mine",
    "/api/orders",
    "/api/notifications",
    "/api/notifications/preferences",
    "/api/devices",
    "/api/bank-accounts",
    "/api/wallet/balance",
    "/api/chats/unread",
    "/api/conversations",
    "/api/users/me/blocks",
]


@pytest.fixture
def gateway_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every call any sandbox gateway makes in this test, by method name."""
    calls: list[str] = []
    for name in ("create_order", "refund", "create_fund_account", "validate_account", "payout"):
        original = getattr(SandboxGateway, name)

        def wrapped(self: Any, *args: Any, __name: str = name, __original: Any = original, **kw: Any) -> Any:
            calls.append(__name)
            return __original(self, *args, **kw)

        monkeypatch.setattr(SandboxGateway, name, wrapped)
    yield calls


async def _gig(api: Client, owner: TestUser) -> str:
    resp = await api.post("/api/gigs", json=GIG, headers=owner.headers)
    body = await resp.json()
    assert resp.status == 201, body
    gig_id: str = body["data"]["id"]
    return gig_id


async def _refused(resp: Any) -> None:
    body = await resp.json()
    assert resp.status == 401, (resp.method, resp.url, resp.status, body)
    assert body["success"] is False and body["error"]["code"] == "unauthorized", body
    assert "no longer exists" in body["error"]["message"]


async def test_a_deleted_users_token_is_401_on_every_write_and_read_and_calls_no_gateway(
    client: Client, pool: asyncpg.Pool, settings: Settings, gateway_calls: list[str]
) -> None:
    owner = await make_user(pool, settings)
    gone = await make_user(pool, settings)
    gig_id = await _gig(client, owner)
    # The same bank-account write of a live user does reach the gateway (the fake counts).
    live = await client.post("/api/bank-accounts", json=WRITES[3][2], headers=owner.headers)
    assert live.status in (200, 201), await live.text()
    assert gateway_calls == ["create_fund_account"]
    gateway_calls.clear()

    assert await pool.execute("DELETE FROM users WHERE id = $1", gone.id) == "DELETE 1"
    for method, path, body in WRITES:
        await _refused(
            await client.request(method, path.replace("{gig}", gig_id), json=body, headers=gone.headers)
        )
    for path in READS:
        await _refused(await client.get(path, headers=gone.headers))
    assert gateway_calls == []
    assert await pool.fetchval("SELECT count(*) FROM gigs WHERE client_id = $1", gone.id) == 0
    assert await pool.fetchval("SELECT count(*) FROM devices WHERE token = 'deleted-user-device'") == 0
    # Login routes take no access token: a stale one sent along does not refuse them.
    resp = await client.post("/api/auth/logout", json={}, headers=gone.headers)
    assert resp.status == 200, await resp.text()


async def test_a_user_vanishing_between_the_check_and_the_write_is_401_not_500(
    client: Client, pool: asyncpg.Pool, settings: Settings
) -> None:
    """The foreign-key violation of a vanished user is answered 401 by the error middleware: here
    the user row goes in the very statement that writes (a trigger deletes it just before the
    insert), after the request's user check passed."""
    user = await make_user(pool, settings)
    await pool.execute(
        "CREATE FUNCTION test_vanish() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN DELETE FROM users WHERE id = NEW.user_id; RETURN NEW; END $$;"
        " CREATE TRIGGER test_vanish BEFORE INSERT ON devices FOR EACH ROW EXECUTE FUNCTION test_vanish();"
    )
    try:
        resp = await client.post(
            "/api/devices", json={"token": "vanishing-device", "platform": "ios"}, headers=user.headers
        )
        await _refused(resp)
    finally:
        await pool.execute("DROP TRIGGER test_vanish ON devices; DROP FUNCTION test_vanish();")
    # The statement failed whole: the user is still there, with no device.
    assert await pool.fetchval("SELECT count(*) FROM users WHERE id = $1", user.id) == 1
    assert await pool.fetchval("SELECT count(*) FROM devices WHERE user_id = $1", user.id) == 0
