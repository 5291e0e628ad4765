"""Email verification end to end through REST: the app sends the code to a local email bridge
(EMAIL_SENDER=webhook), the test reads it there and verifies."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from hub.settings import Settings
from tests.account.conftest import EmailBridge
from tests.factories import TestUser, make_user


async def _email(pool: asyncpg.Pool, user: TestUser) -> str:
    return str(await pool.fetchval("SELECT email FROM users WHERE id = $1", user.id))


async def test_code_verifies_the_email_once(
    mail_api: TestClient[Any, Any], mail: EmailBridge, pool: asyncpg.Pool, settings: Settings
) -> None:
    u = await make_user(pool, settings)
    email = await _email(pool, u)
    r = await mail_api.post("/api/users/me/email/send-code", headers=u.headers)
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["data"] == {"email": email, "expiresIn": 900, "resendAfter": 30}
    code = mail.last(email)
    assert code not in await r.text()

    wrong = "000000" if code != "000000" else "111111"
    r = await mail_api.post("/api/users/me/email/verify", json={"code": wrong}, headers=u.headers)
    assert r.status == 422
    assert (await r.json())["error"]["details"] == {"reason": "wrong_code", "attemptsLeft": 4}
    assert not await pool.fetchval("SELECT email_verified FROM users WHERE id = $1", u.id)

    before = await pool.fetchval("SELECT trust_score FROM users WHERE id = $1", u.id)
    r = await mail_api.post("/api/users/me/email/verify", json={"code": code}, headers=u.headers)
    assert r.status == 200
    me = (await r.json())["data"]
    assert me["emailVerified"] is True
    # The trust rule counts a verified email, in the same transaction.
    assert "email_verified" in me["badges"] and me["trustScore"] > before
    r = await mail_api.post("/api/users/me/email/verify", json={"code": code}, headers=u.headers)
    assert (await r.json())["error"]["details"]["reason"] == "used"
    r = await mail_api.post("/api/users/me/email/send-code", headers=u.headers)
    assert r.status == 409
    assert (await r.json())["error"]["details"]["reason"] == "already_verified"

    # A changed email is unverified again.
    r = await mail_api.patch("/api/users/me", json={"email": f"new.{email}"}, headers=u.headers)
    me = (await r.json())["data"]
    assert me["emailVerified"] is False
    assert "email_verified" not in me["badges"] and me["trustScore"] == before


async def test_code_proves_only_the_address_it_was_sent_to(
    mail_api: TestClient[Any, Any], mail: EmailBridge, pool: asyncpg.Pool, settings: Settings
) -> None:
    u = await make_user(pool, settings)
    email = await _email(pool, u)
    assert (await mail_api.post("/api/users/me/email/send-code", headers=u.headers)).status == 200
    code = mail.last(email)
    r = await mail_api.patch("/api/users/me", json={"email": f"other.{email}"}, headers=u.headers)
    assert r.status == 200
    r = await mail_api.post("/api/users/me/email/verify", json={"code": code}, headers=u.headers)
    assert r.status == 422
    assert (await r.json())["error"]["details"]["reason"] == "email_changed"
    assert not await pool.fetchval("SELECT email_verified FROM users WHERE id = $1", u.id)


async def test_wrong_tries_kill_the_code_and_sends_are_throttled(
    mail_api: TestClient[Any, Any], mail: EmailBridge, pool: asyncpg.Pool, settings: Settings
) -> None:
    u = await make_user(pool, settings)
    email = await _email(pool, u)
    assert (await mail_api.post("/api/users/me/email/send-code", headers=u.headers)).status == 200
    code = mail.last(email)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        await mail_api.post("/api/users/me/email/verify", json={"code": wrong}, headers=u.headers)
    r = await mail_api.post("/api/users/me/email/verify", json={"code": code}, headers=u.headers)
    assert (await r.json())["error"]["details"]["reason"] == "too_many_attempts"
    r = await mail_api.post("/api/users/me/email/send-code", headers=u.headers)
    assert r.status == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert len([m for m in mail.sent if m["email"] == email]) == 1


async def test_refusals_change_nothing(
    mail_api: TestClient[Any, Any], mail: EmailBridge, pool: asyncpg.Pool, settings: Settings
) -> None:
    r = await mail_api.post("/api/users/me/email/send-code")
    assert r.status == 401
    r = await mail_api.post("/api/users/me/email/verify", json={"code": "123456"})
    assert r.status == 401
    no_email = await make_user(pool, settings, email=None)
    r = await mail_api.post("/api/users/me/email/send-code", headers=no_email.headers)
    assert r.status == 422
    assert (await r.json())["error"]["details"]["reason"] == "no_email"
    u = await make_user(pool, settings)
    r = await mail_api.post("/api/users/me/email/verify", json={"code": "123456"}, headers=u.headers)
    assert (await r.json())["error"]["details"]["reason"] == "no_code"
    for bad in ({"code": "12345"}, {"code": 123456}, {}, {"code": "123456", "x": 1}):
        r = await mail_api.post("/api/users/me/email/verify", json=bad, headers=u.headers)
        assert r.status == 400, bad
    # The bridge refusing: 502, and no code is left behind.
    mail.status = 500
    r = await mail_api.post("/api/users/me/email/send-code", headers=u.headers)
    assert r.status == 502
    assert await pool.fetchval("SELECT count(*) FROM email_codes WHERE user_id = $1", u.id) == 0


async def test_concurrent_tries_of_the_right_code_verify_once(
    mail_api: TestClient[Any, Any], mail: EmailBridge, pool: asyncpg.Pool, settings: Settings
) -> None:
    u = await make_user(pool, settings)
    assert (await mail_api.post("/api/users/me/email/send-code", headers=u.headers)).status == 200
    code = mail.last(await _email(pool, u))
    replies = await asyncio.gather(
        *(
            mail_api.post("/api/users/me/email/verify", json={"code": code}, headers=u.headers)
            for _ in range(5)
        )
    )
    statuses = sorted(r.status for r in replies)
    assert statuses == [200, 422, 422, 422, 422], statuses
    for r in replies:
        if r.status == 422:
            assert (await r.json())["error"]["details"]["reason"] == "used"
