"""/api/users/me: the profile JSON, its validation, and every kind of bad access token."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import jwt
import pytest
from aiohttp.test_utils import TestClient

import hub.__main__ as hub_main
from hub.settings import Settings
from hub.tokens import TokenCodec
from tests import factories
from tests.conftest import TEST_JWT_SECRET
from tests.factories import make_user, random_phone
from tests.rest.conftest import CapturingSender, login
from tests.services import Services

Client = TestClient[Any, Any]

USER_FIELDS = {
    "id", "phone", "email", "name", "avatarUrl", "bio", "university", "course", "year", "graduationYear",
    "phoneVerified", "emailVerified", "idVerified", "idDocumentUrl", "roles", "rating", "totalEarnings",
    "completedGigs", "trustScore", "badges", "bankAccountId", "walletBalance", "pendingBalance", "currency",
    "createdAt", "lastActiveAt", "profileComplete",
}  # fmt: skip


async def row_of(pool: asyncpg.Pool, user: factories.TestUser) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM users WHERE id = $1", user.id)
    assert row is not None
    return row


async def test_me_has_every_field_of_the_user_model(
    client: Client, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user(pool, settings, avatar_url="https://cdn.example/a.png", rating=4.5)
    before = int(time.time() * 1000)
    resp = await client.get("/api/users/me", headers=user.headers)
    body = await resp.json()
    assert resp.status == 200, body
    me = body["data"]
    assert set(me) == USER_FIELDS
    assert me["id"] == user.id and me["phone"] == user.phone
    assert me["rating"] == 4.5 and isinstance(me["rating"], float)
    assert me["avatarUrl"] == "https://cdn.example/a.png" and me["bio"] is None
    assert me["walletBalance"] == 0 and me["trustScore"] == 50 and me["badges"] == []
    assert me["profileComplete"] is True and me["roles"] == ["doer", "client"]
    assert abs(me["createdAt"] - before) < 60_000 and isinstance(me["lastActiveAt"], int)


async def test_patch_changes_the_profile(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    user = await make_user(pool, settings, email_verified=True, id_verified=True)
    changes = {
        "name": "  Asha Rao ",
        "email": "asha@iitb.example.edu",
        "avatarUrl": "https://cdn.example/asha.png",
        "bio": "Designer",
        "university": "IIT Bombay",
        "course": "B.Des",
        "year": 3,
        "graduationYear": 2027,
        "roles": ["doer"],
        "idDocumentUrl": "http://files.example/id.pdf",
    }
    resp = await client.patch("/api/users/me", json=changes, headers=user.headers)
    body = await resp.json()
    assert resp.status == 200, body
    me = body["data"]
    assert {k: me[k] for k in changes} == {**changes, "name": "Asha Rao"}
    assert me["emailVerified"] is False and me["idVerified"] is False  # new address, new document
    row = await row_of(pool, user)
    assert row["name"] == "Asha Rao" and row["roles"] == ["doer"] and row["year"] == 3
    # JSON has one number type: 2029.0 is the integer 2029.
    resp = await client.patch("/api/users/me", json={"graduationYear": 2029.0}, headers=user.headers)
    assert resp.status == 200 and (await resp.json())["data"]["graduationYear"] == 2029
    resp = await client.patch("/api/users/me", json={"avatarUrl": None, "bio": ""}, headers=user.headers)
    me = (await resp.json())["data"]
    assert resp.status == 200 and me["avatarUrl"] is None and me["bio"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": None}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"bio": "nul\x00"}, "bio"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"email": " a@b.example"}, "email"),
        ({"email": "a\x00b@c.example"}, "email"),
        ({"avatarUrl": "https://cdn.example/a b.png"}, "avatarUrl"),
        ({"avatarUrl": "ftp://cdn.example/a.png"}, "avatarUrl"),
        ({"avatarUrl": "javascript:alert(1)"}, "avatarUrl"),
        ({"idDocumentUrl": "https://"}, "idDocumentUrl"),
        ({"bio": "b" * 501}, "bio"),
        ({"year": 0}, "year"),
        ({"year": 6}, "year"),
        ({"year": "2"}, "year"),
        ({"year": 2.5}, "year"),
        ({"graduationYear": 1900}, "graduationYear"),
        ({"roles": []}, "roles"),
        ({"roles": ["boss"]}, "roles"),
        ({"roles": "doer"}, "roles"),
        ({"nickname": "ash"}, "nickname"),
        ({"rating": 5}, "rating"),
        ({"walletBalance": 10**9}, "walletBalance"),
        ({"phoneVerified": True}, "phoneVerified"),
        ({"badges": ["gold"]}, "badges"),
        ({"phone": "+919999999999"}, "phone"),
        ({}, "body"),
    ],
)
async def test_patch_refuses_bad_fields_and_changes_nothing(
    client: Client, pool: asyncpg.Pool, settings: Settings, body: dict[str, Any], field: str
) -> None:
    user = await make_user(pool, settings)
    before = await row_of(pool, user)
    # A valid change alongside the bad one must not be applied either.
    sent = {"university": "Changed U", **body} if body else {}
    resp = await client.patch("/api/users/me", json=sent, headers=user.headers)
    result = await resp.json()
    assert resp.status == 400, result
    assert result["error"]["code"] == "bad_request"
    assert field in result["error"]["details"]["fields"]
    assert field in result["error"]["message"]
    assert await row_of(pool, user) == before


async def test_read_only_fields_say_why(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    user = await make_user(pool, settings)
    resp = await client.patch("/api/users/me", json={"trustScore": 100}, headers=user.headers)
    fields = (await resp.json())["error"]["details"]["fields"]
    assert fields == {"trustScore": "cannot be changed: it is kept by the platform"}


async def test_admin_cannot_be_self_assigned(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    user = await make_user(pool, settings)
    before = await row_of(pool, user)
    resp = await client.patch("/api/users/me", json={"roles": ["client", "admin"]}, headers=user.headers)
    body = await resp.json()
    assert resp.status == 403, body
    assert body["error"]["code"] == "forbidden" and "grant-admin" in body["error"]["message"]
    assert await row_of(pool, user) == before


async def test_an_admin_keeps_admin_when_changing_roles(
    client: Client, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user(pool, settings, roles=("doer", "client", "admin"))
    resp = await client.patch("/api/users/me", json={"roles": ["client"]}, headers=user.headers)
    assert resp.status == 200, await resp.text()
    assert (await row_of(pool, user))["roles"] == ["client", "admin"]


async def test_taken_email_is_a_conflict(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    owner = await make_user(pool, settings, email="taken@example.edu")
    user = await make_user(pool, settings)
    before = await row_of(pool, user)
    resp = await client.patch(
        "/api/users/me", json={"email": "Taken@Example.edu", "name": "Other"}, headers=user.headers
    )
    body = await resp.json()
    assert resp.status == 409, body
    assert body["error"]["code"] == "conflict"
    assert await row_of(pool, user) == before
    same = await client.patch("/api/users/me", json={"email": "taken@example.edu"}, headers=owner.headers)
    assert same.status == 200, await same.text()
    assert (await same.json())["data"]["emailVerified"] is False  # make_user leaves it unverified


async def test_a_new_user_completes_the_profile(client: Client, sender: CapturingSender, api: Client) -> None:
    session = await login(api, sender)
    headers = {"Authorization": f"Bearer {session['token']}"}
    assert session["user"]["profileComplete"] is False
    fill = {"email": f"{uuid.uuid4().hex[:8]}@x.edu", "name": "N", "university": "U", "course": "C"}
    me = (await (await api.patch("/api/users/me", json=fill, headers=headers)).json())["data"]
    assert me["profileComplete"] is False
    me = (await (await api.patch("/api/users/me", json={"graduationYear": 2029}, headers=headers)).json())[
        "data"
    ]
    assert me["profileComplete"] is True


def forged(payload: dict[str, Any], key: str = TEST_JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


def _none_token(payload: dict[str, Any]) -> str:
    import base64
    import json

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


async def test_bad_access_tokens_are_refused(
    client: Client, pool: asyncpg.Pool, settings: Settings, sender: CapturingSender, api: Client
) -> None:
    user = await make_user(pool, settings)
    now = int(time.time())
    claims = {"sub": user.id, "iat": now, "exp": now + 600, "jti": "j1", "typ": "access", "roles": ["doer"]}
    session = await login(api, sender)
    # Each refusal names its reason in fixed words, never the JWT library's own text.
    tokens = {
        "alg none": (_none_token(claims), "wrong algorithm"),
        "HS512": (forged(claims, algorithm="HS512"), "wrong algorithm"),
        "other key": (forged(claims, key="another-secret-" + "y" * 40), "bad signature"),
        "expired": (
            TokenCodec(settings).issue(user.id, now=now - settings.access_token_ttl - 10),
            "token expired",
        ),
        "not yet valid": (forged({**claims, "iat": now + 3600, "exp": now + 7200}), "token not yet valid"),
        "refresh token": (session["refreshToken"], "malformed token"),
        "refresh-typed JWT": (forged({**claims, "typ": "refresh"}), "not an access token"),
        "no sub": (forged({k: v for k, v in claims.items() if k != "sub"}), "missing claim"),
        "garbage": ("abc.def.ghi", "malformed token"),
    }
    for name, (token, reason) in tokens.items():
        resp = await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
        body = await resp.json()
        assert resp.status == 401, (name, body)
        assert body["error"]["code"] == "unauthorized", name
        message = body["error"]["message"]
        assert message == f"The access token is not valid ({reason}); refresh it and try again.", name
    good = await client.get("/api/users/me", headers={"Authorization": f"Bearer {forged(claims)}"})
    assert good.status == 200  # the forging helper itself makes valid tokens with the right key
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        resp = await client.get("/api/users/me", headers=headers)
        assert resp.status == 401
        resp = await client.patch("/api/users/me", json={"name": "X"}, headers=headers)
        assert resp.status == 401
    assert (await row_of(pool, user))["name"] == "Test User"


async def test_token_of_a_deleted_user_is_refused(
    client: Client, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user(pool, settings)
    await pool.execute("DELETE FROM users WHERE id = $1", user.id)
    for resp in (
        await client.get("/api/users/me", headers=user.headers),
        await client.patch("/api/users/me", json={"name": "Ghost"}, headers=user.headers),
    ):
        body = await resp.json()
        assert resp.status == 401, body
        assert "no longer exists" in body["error"]["message"]


def test_grant_admin_command(services: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    phone = random_phone()

    async def arrange() -> None:
        conn = await asyncpg.connect(services.dsn)
        try:
            await conn.execute("INSERT INTO users (phone) VALUES ($1)", phone)
        finally:
            await conn.close()

    async def roles() -> list[str]:
        conn = await asyncpg.connect(services.dsn)
        try:
            return list(await conn.fetchval("SELECT roles FROM users WHERE phone = $1", phone))
        finally:
            await conn.close()

    asyncio.run(arrange())
    monkeypatch.setenv("DATABASE_URL", services.dsn)
    monkeypatch.setenv("GIGWIRE_ENV", "dev")
    monkeypatch.setenv("JWT_SECRET", TEST_JWT_SECRET)
    monkeypatch.setenv("GIGWIRE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert hub_main.main(["grant-admin", phone]) == 0
    assert asyncio.run(roles()) == ["doer", "client", "admin"]
    assert hub_main.main(["grant-admin", phone]) == 0  # idempotent
    assert asyncio.run(roles()) == ["doer", "client", "admin"]
    assert hub_main.main(["grant-admin", random_phone()]) == 1
