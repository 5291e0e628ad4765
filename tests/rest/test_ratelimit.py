"""The /api rate limiter: headers on every answer, 429 over the limit, counts shared through Redis."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.logs import OUTAGES
from hub.settings import Settings, SettingsError
from tests.factories import make_user
from tests.services import RedisServer

Client = TestClient[Any, Any]
Factory = Callable[..., web.Application]


def figures(resp: Any) -> tuple[int, int, int]:
    h = resp.headers
    return int(h["X-RateLimit-Limit"]), int(h["X-RateLimit-Remaining"]), int(h["X-RateLimit-Reset"])


async def test_every_api_answer_carries_the_headers(
    client: Client, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user(pool, settings)
    answers = [
        await client.get("/api/users/me", headers=user.headers),  # 200
        await client.get("/api/users/me"),  # 401
        await client.patch("/api/users/me", json={"year": 9}, headers=user.headers),  # 400
        await client.get("/api/no-such-route"),  # 404
        await client.delete("/api/auth/send-otp"),  # 405
    ]
    assert [r.status for r in answers] == [200, 401, 400, 404, 405]
    for resp in answers:
        limit, remaining, reset = figures(resp)
        assert limit == 1_000_000 and 0 <= remaining < limit and 1 <= reset <= 60
    health = await client.get("/healthz")
    assert "X-RateLimit-Limit" not in health.headers


async def test_over_the_ip_limit_is_429_with_retry_after(
    aiohttp_client: Any, make_app: Factory, fresh_prefix: str
) -> None:
    api = await aiohttp_client(make_app(api_rate_per_ip=5, redis_prefix=fresh_prefix))
    seen = []
    for _ in range(5):
        resp = await api.get("/api/users/me")
        assert resp.status == 401
        seen.append(figures(resp)[:2])
    assert seen == [(5, 4), (5, 3), (5, 2), (5, 1), (5, 0)]
    resp = await api.get("/api/users/me")
    body = await resp.json()
    assert resp.status == 429, body
    assert body["success"] is False and body["error"]["code"] == "rate_limited"
    assert body["error"]["details"]["scope"] == "ip"
    retry = int(resp.headers["Retry-After"])
    assert 1 <= retry <= 60 and figures(resp) == (5, 0, retry)
    # Over the limit, nothing runs: a send-otp is refused before the handler.
    resp = await api.post("/api/auth/send-otp", json={"phone": "+919812345678"})
    assert resp.status == 429


async def test_two_apps_sharing_the_redis_prefix_share_the_count(
    aiohttp_client: Any, make_app: Factory, fresh_prefix: str
) -> None:
    first = await aiohttp_client(make_app(api_rate_per_ip=5, redis_prefix=fresh_prefix))
    second = await aiohttp_client(make_app(api_rate_per_ip=5, redis_prefix=fresh_prefix))
    for _ in range(3):
        assert (await first.get("/api/users/me")).status == 401
    resp = await second.get("/api/users/me")
    assert figures(resp)[1] == 1
    assert (await second.get("/api/users/me")).status == 401
    assert (await first.get("/api/users/me")).status == 429
    assert (await second.get("/api/users/me")).status == 429


async def test_the_user_limit_counts_requests_with_a_valid_token(
    aiohttp_client: Any, make_app: Factory, fresh_prefix: str, pool: asyncpg.Pool, settings: Settings
) -> None:
    api = await aiohttp_client(make_app(api_rate_per_user=3, redis_prefix=fresh_prefix))
    user = await make_user(pool, settings)
    for remaining in (2, 1, 0):
        resp = await api.get("/api/users/me", headers=user.headers)
        assert resp.status == 200
        assert figures(resp)[:2] == (3, remaining)
    resp = await api.get("/api/users/me", headers=user.headers)
    body = await resp.json()
    assert resp.status == 429, body
    assert body["error"]["details"]["scope"] == "user"
    # Another user, and requests without a token, are not held back by this user's count.
    other = await make_user(pool, settings)
    assert (await api.get("/api/users/me", headers=other.headers)).status == 200
    anonymous = await api.get("/api/users/me")
    assert anonymous.status == 401
    # A bad token is not this user's: the handler answers it with 401, not 429.
    bad = await api.get("/api/users/me", headers={"Authorization": f"Bearer {user.token}x"})
    assert bad.status == 401


async def test_forwarded_for_counts_only_behind_a_trusted_proxy(
    aiohttp_client: Any, make_app: Factory, fresh_prefix: str
) -> None:
    untrusted = await aiohttp_client(make_app(api_rate_per_ip=2, redis_prefix=fresh_prefix + "u:"))
    for ip in ("203.0.113.1", "203.0.113.2"):
        await untrusted.get("/api/users/me", headers={"X-Forwarded-For": ip})
    resp = await untrusted.get("/api/users/me", headers={"X-Forwarded-For": "203.0.113.3"})
    assert resp.status == 429  # the header is ignored: one client, 127.0.0.1

    proxied = await aiohttp_client(
        make_app(api_rate_per_ip=2, redis_prefix=fresh_prefix + "p:", trusted_proxies=("127.0.0.0/8",))
    )
    for _ in range(2):
        resp = await proxied.get("/api/users/me", headers={"X-Forwarded-For": "198.51.100.7, 10.9.9.9"})
        assert resp.status == 401
    resp = await proxied.get("/api/users/me", headers={"X-Forwarded-For": "198.51.100.7, 10.9.9.9"})
    assert resp.status == 429  # the client is 10.9.9.9, the right-most untrusted hop
    # A client cannot dodge by writing its own hops on the left.
    resp = await proxied.get("/api/users/me", headers={"X-Forwarded-For": "1.2.3.4, 10.9.9.9"})
    assert resp.status == 429
    resp = await proxied.get("/api/users/me", headers={"X-Forwarded-For": "198.51.100.8"})
    assert resp.status == 401


async def test_the_api_stays_up_when_the_store_is_down(
    aiohttp_client: Any, make_app: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    redis = RedisServer()
    redis.start()
    try:
        api = await aiohttp_client(make_app(redis_url=redis.url, api_rate_per_ip=5))
        resp = await api.get("/api/users/me")
        assert resp.status == 401 and figures(resp)[:2] == (5, 4)
        redis.stop()
        OUTAGES.forget()  # an earlier test's outage line must not hide this one's
        with caplog.at_level(logging.WARNING, logger="gigwire.ratelimit"):
            for _ in range(6):  # more than the limit: nobody is counting now
                resp = await api.get("/api/users/me")
                assert resp.status == 401, await resp.text()
                assert "X-RateLimit-Limit" not in resp.headers
        # One line for the outage, not one per request.
        assert len([r for r in caplog.records if "store unreachable" in r.getMessage()]) == 1
    finally:
        redis.cleanup()


def test_trusted_proxies_setting(tmp_path: Any) -> None:
    base = {"GIGWIRE_DATA_DIR": str(tmp_path)}
    parsed = Settings.from_env({**base, "TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7 ,::1"})
    assert parsed.trusted_proxies == ("10.0.0.0/8", "192.168.1.7/32", "::1/128")
    assert Settings.from_env(base).trusted_proxies == ()
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**base, "TRUSTED_PROXIES": "10.0.0.0/8, the-lb"})
    assert caught.value.variable == "TRUSTED_PROXIES" and "the-lb" in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**base, "OTP_SENDS_PER_IP": "0"})
    assert caught.value.variable == "OTP_SENDS_PER_IP"
