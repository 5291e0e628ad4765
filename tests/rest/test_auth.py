"""Phone OTP login: send-otp and verify-otp, their throttles, and every way a code is refused."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.settings import Settings
from rest.otp import OTP_SENDER
from tests.factories import random_phone
from tests.rest.conftest import CapturingSender, login, skip_resend_gap
from tests.services import Services

Client = TestClient[Any, Any]


async def otp_row(pool: asyncpg.Pool, phone: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM otp_codes WHERE phone = $1", phone)


async def user_count(pool: asyncpg.Pool, phone: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM users WHERE phone = $1", phone))


async def error_of(resp: Any, status: int, code: str) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


async def test_send_otp_answers_without_the_code_and_stores_only_its_hash(
    api: Client, sender: CapturingSender, pool: asyncpg.Pool
) -> None:
    phone = random_phone()
    resp = await api.post("/api/auth/send-otp", json={"phone": phone})
    text = await resp.text()
    assert resp.status == 200, text
    body = await resp.json()
    assert body == {
        "success": True,
        "data": {"phone": phone, "expiresIn": 300, "resendAfter": 30},
        "message": "OTP sent",
        "expiresIn": 300,
    }
    code = sender.last(phone)
    assert re.fullmatch(r"[0-9]{6}", code)
    assert code not in text
    row = await otp_row(pool, phone)
    assert row is not None
    assert code.encode() not in bytes(row["code_hash"])
    assert len(row["code_hash"]) == 32
    assert row["attempts"] == 0


async def test_log_sender_writes_the_code_to_the_otp_log(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    phone = random_phone()
    with caplog.at_level(logging.INFO, logger="gigwire.otp"):
        resp = await client.post("/api/auth/send-otp", json={"phone": phone})
        assert resp.status == 200, await resp.text()
    lines = [r.getMessage() for r in caplog.records if r.name == "gigwire.otp"]
    assert len(lines) == 1
    code = re.search(r"\b([0-9]{6})\b", lines[0])
    assert code is not None and phone in lines[0]
    resp = await client.post("/api/auth/verify-otp", json={"phone": phone, "otp": code.group(1)})
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"phone": None},
        {"phone": 919876543210},
        {"phone": "9876543210"},
        {"phone": "+91 98765 43210"},
        {"phone": "+0123456789"},
        {"phone": "+1234567"},
        {"phone": "+1234567890123456"},
        {"phone": "+91987654321a"},
        {"phone": " +919876543210"},
        {"phone": "+919876543210", "otp": "123456"},
    ],
)
async def test_send_otp_refuses_bad_input_and_changes_nothing(
    api: Client, sender: CapturingSender, pool: asyncpg.Pool, body: dict[str, Any]
) -> None:
    before = await pool.fetchval("SELECT count(*) FROM otp_codes")
    resp = await api.post("/api/auth/send-otp", json=body)
    error = await error_of(resp, 400, "bad_request")
    assert error["details"]["fields"]
    assert sender.sent == []
    assert await pool.fetchval("SELECT count(*) FROM otp_codes") == before


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"+919876543210"'])
async def test_send_otp_refuses_a_body_that_is_not_an_object(
    api: Client, sender: CapturingSender, raw: bytes
) -> None:
    resp = await api.post("/api/auth/send-otp", data=raw, headers={"Content-Type": "application/json"})
    await error_of(resp, 400, "bad_request")
    assert sender.sent == []


async def test_resend_within_30_s_is_refused_and_the_first_code_still_works(
    api: Client, sender: CapturingSender, pool: asyncpg.Pool
) -> None:
    phone = random_phone()
    assert (await api.post("/api/auth/send-otp", json={"phone": phone})).status == 200
    first = sender.last(phone)
    row = await otp_row(pool, phone)
    resp = await api.post("/api/auth/send-otp", json={"phone": phone})
    error = await error_of(resp, 429, "rate_limited")
    assert 1 <= int(resp.headers["Retry-After"]) <= 30
    assert error["details"]["retryAfter"] == int(resp.headers["Retry-After"])
    assert len(sender.sent) == 1
    assert await otp_row(pool, phone) == row
    resp = await api.post("/api/auth/verify-otp", json={"phone": phone, "otp": first})
    assert resp.status == 200, await resp.text()


async def test_sixth_send_in_an_hour_is_refused(
    api: Client, sender: CapturingSender, pool: asyncpg.Pool, services: Services
) -> None:
    phone = random_phone()
    for _ in range(5):
        resp = await api.post("/api/auth/send-otp", json={"phone": phone})
        assert resp.status == 200, await resp.text()
        await skip_resend_gap(services, phone)
    row = await otp_row(pool, phone)
    resp = await api.post("/api/auth/send-otp", json={"phone": phone})
    error = await error_of(resp, 429, "rate_limited")
    assert "this hour" in error["message"]
    assert 1790 <= int(resp.headers["Retry-After"]) <= 3600
    assert len(sender.sent) == 5
    assert await otp_row(pool, phone) == row
    # Only the latest code is live: a new send replaces the previous one.
    codes = [c for _, c in sender.sent]
    if codes[0] != codes[-1]:
        resp = await api.post("/api/auth/verify-otp", json={"phone": phone, "otp": codes[0]})
        assert resp.status == 401
    resp = await api.post("/api/auth/verify-otp", json={"phone": phone, "otp": codes[-1]})
    assert resp.status == 200, await resp.text()


async def test_sends_per_ip_are_limited_across_phones(
    aiohttp_client: Any, make_app: Callable[..., web.Application], fresh_prefix: str
) -> None:
    app = make_app(otp_sends_per_ip=3, redis_prefix=fresh_prefix)
    sender = CapturingSender()
    app[OTP_SENDER] = sender
    api = await aiohttp_client(app)
    for _ in range(3):
        assert (await api.post("/api/auth/send-otp", json={"phone": random_phone()})).status == 200
    resp = await api.post("/api/auth/send-otp", json={"phone": random_phone()})
    error = await error_of(resp, 429, "rate_limited")
    assert "IP address" in error["message"]
    assert int(resp.headers["Retry-After"]) > 30
    assert len(sender.sent) == 3


async def test_verify_creates_the_user_once_and_sets_the_refresh_cookie(
    api: Client, sender: CapturingSender, pool: asyncpg.Pool, settings: Settings, services: Services
) -> None:
    phone = random_phone()
    await api.post("/api/auth/send-otp", json={"phone": phone})
    resp = await api.post("/api/auth/verify-otp", json={"phone": phone, "otp": sender.last(phone)})
    body = await resp.json()
    assert resp.status == 200, body
    data = body["data"]
    assert data["isNewUser"] is True
    assert data["expiresIn"] == settings.access_token_ttl
    user = data["user"]
    assert user["phone"] == phone and user["phoneVerified"] is True
    assert user["roles"] == ["doer", "client"] and user["profileComplete"] is False
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"refreshToken={data['refreshToken']};")
    for attribute in ("HttpOnly", "Path=/api/auth", "SameSite=Lax", f"Max-Age={settings.refresh_token_ttl}"):
        assert attribute in cookie
    assert "Secure" not in cookie
    me = await api.get("/api/users/me", headers={"Authorization": f"Bearer {data['token']}"})
    assert (await me.json())["data"]["id"] == user["id"]
    assert await user_count(pool, phone) == 1
    first_active = await pool.fetchval("SELECT last_active_at FROM users WHERE phone = $1", phone)

    await skip_resend_gap(services, phone)
    again = await login(api, sender, phone)
    assert again["isNewUser"] is False
    assert again["user"]["id"] == user["id"]
    assert again["refreshToken"] != data["refreshToken"]
    assert await user_count(pool, phone) == 1
    assert await pool.fetchval("SELECT last_active_at FROM users WHERE phone = $1", phone) > first_active


async def test_cookie_is_secure_when_configured(
    aiohttp_client: Any, make_app: Callable[..., web.Application]
) -> None:
    app = make_app(cookie_secure=True)
    sender = CapturingSender()
    app[OTP_SENDER] = sender
    api = await aiohttp_client(app)
    phone = random_phone()
    await api.post("/api/auth/send-otp", json={"phone": phone})
    resp = await api.post("/api/auth/verify-otp", json={"phone": phone, "otp": sender.last(phone)})
    assert resp.status == 200
    assert "Secure" in resp.headers["Set-Cookie"]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_five_wrong_tries_kill_the_code(
    api: Client, sender: CapturingSender, pool: asyncpg.Pool
) -> None:
    phone = random_phone()
    await api.post("/api/auth/send-otp", json={"phone": phone})
    code = sender.last(phone)
    for left in (4, 3, 2, 1, 0):
        resp = await api.post("/api/auth/verify-otp", json={"phone": phone, "otp": wrong(code)})
        error = await error_of(resp, 401, "unauthorized")
        assert error["details"] == {"reason": "wrong_code", "attemptsLeft": left}
    assert "request a new one" in error["message"]
    resp = await api.post("/api/auth/verify-otp", json={"phone": phone, "otp": code})
    error = await error_of(resp, 401, "unauthorized")
    assert error["details"]["reason"] == "too_many_attempts"
    assert await user_count(pool, phone) == 0
    assert "Set-Cookie" not in resp.headers


async def test_expired_code_is_refused(api: Client, sender: CapturingSender, pool: asyncpg.Pool) -> None:
    phone = random_phone()
    await api.post("/api/auth/send-otp", json={"phone": phone})
    await pool.execute(
        "UPDATE otp_codes SET expires_at = now() - interval '1 second' WHERE phone = $1", phone
    )
    resp = await api.post("/api/auth/verify-otp", json={"phone": phone, "otp": sender.last(phone)})
    error = await error_of(resp, 401, "unauthorized")
    assert error["details"]["reason"] == "expired"
    assert await user_count(pool, phone) == 0


async def test_used_code_is_refused(api: Client, sender: CapturingSender, pool: asyncpg.Pool) -> None:
    phone = random_phone()
    data = await login(api, sender, phone)
    resp = await api.post("/api/auth/verify-otp", json={"phone": phone, "otp": sender.last(phone)})
    error = await error_of(resp, 401, "unauthorized")
    assert error["details"]["reason"] == "used"
    tokens = await pool.fetchval("SELECT count(*) FROM refresh_tokens WHERE user_id = $1", data["user"]["id"])
    assert tokens == 1


async def test_code_never_sent_is_refused(api: Client, pool: asyncpg.Pool) -> None:
    phone = random_phone()
    resp = await api.post("/api/auth/verify-otp", json={"phone": phone, "otp": "123456"})
    error = await error_of(resp, 401, "unauthorized")
    assert error["details"]["reason"] == "no_code"
    assert "send-otp" in error["message"]
    assert await user_count(pool, phone) == 0


@pytest.mark.parametrize(
    "change",
    [
        {"otp": None},
        {"otp": "12345"},
        {"otp": "1234567"},
        {"otp": "12a456"},
        {"otp": 123456},
        {"phone": None},
        {"phone": "98765"},
        {"extra": True},
    ],
)
async def test_verify_refuses_bad_input_without_spending_a_try(
    api: Client, sender: CapturingSender, pool: asyncpg.Pool, change: dict[str, Any]
) -> None:
    phone = random_phone()
    await api.post("/api/auth/send-otp", json={"phone": phone})
    code = sender.last(phone)
    body = {"phone": phone, "otp": code, **change}
    body = {k: v for k, v in body.items() if v is not None}
    resp = await api.post("/api/auth/verify-otp", json=body)
    await error_of(resp, 400, "bad_request")
    row = await otp_row(pool, phone)
    assert row is not None and row["attempts"] == 0 and row["used_at"] is None
    assert await user_count(pool, phone) == 0


async def test_webhook_sender_posts_phone_and_code(
    aiohttp_client: Any, aiohttp_server: Any, make_app: Callable[..., web.Application], pool: asyncpg.Pool
) -> None:
    received: list[dict[str, Any]] = []
    status = {"code": 200}

    async def bridge(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"queued": True}, status=status["code"])

    bridge_app = web.Application()
    bridge_app.router.add_post("/sms", bridge)
    server = await aiohttp_server(bridge_app, host="127.0.0.1")
    app = make_app(otp_sender="webhook", otp_webhook_url=str(server.make_url("/sms")))
    api = await aiohttp_client(app)

    phone = random_phone()
    resp = await api.post("/api/auth/send-otp", json={"phone": phone})
    assert resp.status == 200, await resp.text()
    assert len(received) == 1 and received[0]["phone"] == phone
    assert set(received[0]) == {"phone", "code"}
    resp = await api.post("/api/auth/verify-otp", json={"phone": phone, "otp": received[0]["code"]})
    assert resp.status == 200, await resp.text()

    status["code"] = 500
    other = random_phone()
    resp = await api.post("/api/auth/send-otp", json={"phone": other})
    await error_of(resp, 502, "bad_gateway")
    assert len(received) == 2
    assert await otp_row(pool, other) is None
