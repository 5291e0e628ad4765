"""Google sign-in: ID tokens verified against a local JWKS (RS256, audience, issuer, expiry,
email_verified, cached keys), linking by verified email, new users without a phone."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hub.settings import Settings
from rest.google_keys import GOOGLE_KEYS, GoogleKeys
from rest.otp import OTP_SENDER
from tests.account.google_fake import CLIENT_ID, FakeGoogle, new_key
from tests.factories import make_user, random_phone
from tests.market.conftest import gig_body
from tests.rest.conftest import CapturingSender

Client = TestClient[Any, Any]
SMS = CapturingSender()


@pytest.fixture
async def google(aiohttp_server: Callable[..., Any]) -> FakeGoogle:
    fake = FakeGoogle(keys={"k1": new_key()})
    server: TestServer = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("/oauth2/v3/certs"))
    return fake


async def _client(
    aiohttp_client: Callable[..., Any],
    make_app: Callable[..., web.Application],
    google: FakeGoogle,
    gap: float,
) -> Client:
    app = make_app(
        google_client_ids=("other-app", CLIENT_ID), google_jwks_url=google.url, otp_sends_per_ip=1_000_000
    )
    app[GOOGLE_KEYS] = GoogleKeys(google.url, refetch_gap_s=gap)
    app[OTP_SENDER] = SMS
    client: Client = await aiohttp_client(app)
    return client


@pytest.fixture
async def gapi(
    aiohttp_client: Callable[..., Any], make_app: Callable[..., web.Application], google: FakeGoogle
) -> Client:
    return await _client(aiohttp_client, make_app, google, 3600.0)


def _sub() -> str:
    return str(secrets.randbelow(10**20))


async def _sign_in(api: Client, token: str) -> tuple[int, Any]:
    r = await api.post("/api/auth/google", json={"idToken": token})
    return r.status, await r.json()


async def test_new_user_then_same_user(gapi: Client, google: FakeGoogle, pool: asyncpg.Pool) -> None:
    sub, email = _sub(), f"g{secrets.token_hex(4)}@gmail.com"
    r = await gapi.post("/api/auth/google", json={"idToken": google.token(sub, email)})
    assert r.status == 200, await r.text()
    body = await r.json()
    user = body["data"]["user"]
    assert body["data"]["isNewUser"] is True
    assert (user["phone"], user["email"], user["emailVerified"], user["phoneVerified"]) == (
        None,
        email,
        True,
        False,
    )
    assert (user["name"], user["avatarUrl"]) == ("Asha Rao", "https://lh3.googleusercontent.com/a/photo.jpg")
    assert "refreshToken" in r.cookies
    me = await gapi.get("/api/users/me", headers={"Authorization": f"Bearer {body['data']['token']}"})
    assert (await me.json())["data"]["id"] == user["id"]

    r = await gapi.post("/api/auth/google-login", json={"idToken": google.token(sub, email)})
    status, again = r.status, await r.json()
    assert status == 200
    assert (again["data"]["isNewUser"], again["data"]["user"]["id"]) == (False, user["id"])
    assert google.fetches == 1  # the key set is cached (max-age=3600)
    assert await pool.fetchval("SELECT google_sub FROM users WHERE id = $1", user["id"]) == sub


async def test_verified_email_links_the_existing_account(
    gapi: Client, google: FakeGoogle, pool: asyncpg.Pool, settings: Settings
) -> None:
    email = f"linked{secrets.token_hex(4)}@example.edu"
    existing = await make_user(pool, settings, email=email)
    status, body = await _sign_in(gapi, google.token(_sub(), email.upper()))
    assert status == 200, body
    user = body["data"]["user"]
    assert (user["id"], user["phone"], body["data"]["isNewUser"]) == (existing.id, existing.phone, False)
    assert user["emailVerified"] is True
    # Another Google account with the same email cannot take it over.
    status, body = await _sign_in(gapi, google.token(_sub(), email))
    assert status == 409
    assert body["error"]["details"]["reason"] == "linked_elsewhere"


async def test_each_bad_token_is_401_and_creates_nobody(
    gapi: Client, google: FakeGoogle, pool: asyncpg.Pool
) -> None:
    email = f"bad{secrets.token_hex(4)}@gmail.com"
    sub = _sub()
    cases = {
        "bad_signature": google.token(sub, email, key=new_key()),
        "wrong_audience": google.token(sub, email, aud="someone-else.apps.googleusercontent.com"),
        "wrong_issuer": google.token(sub, email, iss="https://evil.example.com"),
        "expired": google.token(sub, email, exp=1_600_000_000, iat=1_599_990_000),
        "unknown_key": google.token(sub, email, kid="k-unknown", key=new_key()),
        "email_unverified": google.token(sub, email, email_verified=False),
        "malformed": "not.a.jwt",
    }
    for reason, token in cases.items():
        status, body = await _sign_in(gapi, token)
        assert (status, body["error"]["details"]["reason"]) == (401, reason), (reason, body)
    assert (
        await pool.fetchval("SELECT count(*) FROM users WHERE google_sub = $1 OR email = $2", sub, email) == 0
    )
    # The unknown kid did not refetch: the set was fetched less than refetch_gap_s ago.
    assert google.fetches == 1
    status, body = await _sign_in(gapi, "")
    assert status == 400


async def test_rotated_key_is_fetched_on_unknown_kid(
    aiohttp_client: Callable[..., Any], make_app: Callable[..., web.Application], google: FakeGoogle
) -> None:
    api = await _client(aiohttp_client, make_app, google, 0.0)
    email = f"rot{secrets.token_hex(4)}@gmail.com"
    assert (await _sign_in(api, google.token(_sub(), email)))[0] == 200
    google.keys["k2"] = new_key()  # Google publishes a new key, then signs with it
    status, body = await _sign_in(api, google.token(_sub(), f"x{email}", kid="k2"))
    assert status == 200, body
    assert google.fetches == 2


async def test_google_user_needs_a_verified_phone_before_money_moves(
    gapi: Client, google: FakeGoogle, pool: asyncpg.Pool, settings: Settings
) -> None:
    status, body = await _sign_in(gapi, google.token(_sub(), f"m{secrets.token_hex(4)}@gmail.com"))
    assert status == 200
    headers = {"Authorization": f"Bearer {body['data']['token']}"}
    r = await gapi.post("/api/gigs", json=gig_body(), headers=headers)
    assert r.status == 422
    assert (await r.json())["error"]["details"]["missing"] == ["university", "course", "graduationYear"]
    fill = {"university": "IIT", "course": "B.Tech", "graduationYear": 2027}
    r = await gapi.patch("/api/users/me", json=fill, headers=headers)
    assert (await r.json())["data"]["profileComplete"] is True
    r = await gapi.post("/api/gigs", json=gig_body(), headers=headers)
    assert r.status == 201
    gig_id = (await r.json())["data"]["id"]
    doer = await make_user(pool, settings)
    r = await gapi.post(
        f"/api/gigs/{gig_id}/applications",
        json={"proposal": "Me, please.", "bidAmount": 60_000},
        headers=doer.headers,
    )
    app_id = (await r.json())["data"]["id"]
    r = await gapi.post(f"/api/applications/{app_id}/accept", headers=headers)
    assert r.status == 403
    assert (await r.json())["error"]["details"]["reason"] == "phone_unverified"

    # Another account's phone cannot be taken over, even with its code.
    r = await gapi.post("/api/users/me/phone/send-code", json={"phone": doer.phone}, headers=headers)
    assert r.status == 200, await r.text()
    taken = {"phone": doer.phone, "otp": SMS.last(doer.phone)}
    r = await gapi.post("/api/users/me/phone/verify", json=taken, headers=headers)
    assert (r.status, (await r.json())["error"]["details"]["reason"]) == (409, "phone_taken")
    # The user verifies a phone of their own; then the order opens.
    phone = random_phone()
    r = await gapi.post("/api/users/me/phone/send-code", json={"phone": phone}, headers=headers)
    assert r.status == 200
    code = SMS.last(phone)
    wrong = "000000" if code != "000000" else "111111"
    r = await gapi.post("/api/users/me/phone/verify", json={"phone": phone, "otp": wrong}, headers=headers)
    assert (r.status, (await r.json())["error"]["details"]["reason"]) == (422, "wrong_code")
    r = await gapi.post("/api/users/me/phone/verify", json={"phone": phone, "otp": code}, headers=headers)
    assert r.status == 200, await r.text()
    me = (await r.json())["data"]
    assert (me["phone"], me["phoneVerified"]) == (phone, True)
    r = await gapi.post(f"/api/applications/{app_id}/accept", headers=headers)
    assert r.status == 200, await r.text()
    # A verified phone is the account's login and stays.
    r = await gapi.post("/api/users/me/phone/send-code", json={"phone": random_phone()}, headers=headers)
    assert (r.status, (await r.json())["error"]["details"]["reason"]) == (409, "already_verified")
    r = await gapi.post("/api/users/me/phone/send-code", json={"phone": random_phone()})
    assert r.status == 401


async def test_not_configured_is_refused(client: Client) -> None:
    r = await client.post("/api/auth/google", json={"idToken": "a.b.c"})
    assert r.status == 403
    assert (await r.json())["error"]["details"]["reason"] == "google_disabled"


async def test_keys_expire_with_max_age_and_concurrent_first_sign_ins_make_one_user(
    aiohttp_client: Callable[..., Any],
    make_app: Callable[..., web.Application],
    google: FakeGoogle,
    pool: asyncpg.Pool,
) -> None:
    google.cache_control = "public, max-age=0"
    api = await _client(aiohttp_client, make_app, google, 3600.0)
    sub, email = _sub(), f"race{secrets.token_hex(4)}@gmail.com"
    token = google.token(sub, email)
    answers = await asyncio.gather(*(_sign_in(api, token) for _ in range(5)))
    assert [status for status, _ in answers] == [200] * 5, answers
    assert len({body["data"]["user"]["id"] for _, body in answers}) == 1
    assert sum(body["data"]["isNewUser"] for _, body in answers) == 1
    assert await pool.fetchval("SELECT count(*) FROM users WHERE google_sub = $1", sub) == 1
    before = google.fetches
    assert (await _sign_in(api, token))[0] == 200
    assert google.fetches == before + 1  # max-age=0: the set is fetched again


async def test_unreachable_keys_are_a_502_and_create_nobody(
    aiohttp_client: Callable[..., Any], make_app: Callable[..., web.Application], google: FakeGoogle
) -> None:
    app = make_app(google_client_ids=(CLIENT_ID,), google_jwks_url="http://127.0.0.1:9/certs")
    api: Client = await aiohttp_client(app)
    status, body = await _sign_in(api, google.token(_sub(), "nobody@gmail.com"))
    assert (status, body["error"]["code"]) == (502, "bad_gateway")


async def test_deleted_google_account_signs_up_again_as_a_new_user(
    gapi: Client, google: FakeGoogle, pool: asyncpg.Pool
) -> None:
    sub, email = _sub(), f"del{secrets.token_hex(4)}@gmail.com"
    status, body = await _sign_in(gapi, google.token(sub, email))
    assert status == 200
    first = body["data"]["user"]["id"]
    headers = {"Authorization": f"Bearer {body['data']['token']}"}
    r = await gapi.delete("/api/users/me", headers=headers)
    assert r.status == 200, await r.text()
    gone = await pool.fetchrow("SELECT google_sub, email, phone, deleted_at FROM users WHERE id = $1", first)
    assert (gone["google_sub"], gone["email"], gone["phone"]) == (None, None, None)
    assert gone["deleted_at"] is not None
    status, body = await _sign_in(gapi, google.token(sub, email))
    assert status == 200
    assert body["data"]["isNewUser"] is True and body["data"]["user"]["id"] != first
