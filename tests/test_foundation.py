"""The web process's foundation: health, readiness, error shape, CORS, settings, migrations."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from hub.db import migrate
from hub.settings import Settings, SettingsError
from tests.services import Services, _with_database


async def test_healthz_and_readyz(client: Any) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert body == {"status": "ok", "database": "ok", "broker": "ok"}
    assert len(resp.headers["X-Request-Id"]) == 32


async def test_unknown_api_route_gets_error_shape(client: Any) -> None:
    resp = await client.get("/api/nothing-here", headers={"X-Request-Id": "abc-1"})
    assert resp.status == 404
    body = await resp.json()
    assert body["success"] is False
    assert body["error"]["code"] == "not_found"
    assert resp.headers["X-Request-Id"] == "abc-1"


async def test_cors_only_for_client_url(client: Any, settings: Settings) -> None:
    pre = await client.options(
        "/api/users/me",
        headers={
            "Origin": settings.client_url,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "Content-Type, Authorization",
        },
    )
    assert pre.status == 204
    assert pre.headers["Access-Control-Allow-Origin"] == settings.client_url
    assert pre.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    assert "PATCH" in pre.headers["Access-Control-Allow-Methods"]
    evil = await client.options(
        "/api/users/me", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert evil.status == 403
    assert "Access-Control-Allow-Origin" not in evil.headers


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DATABASE_URL": "postgresql://x/y"}, "JWT_SECRET"),
        ({"DATABASE_URL": "postgresql://x/y", "JWT_SECRET": "short"}, "JWT_SECRET"),
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"GIGWIRE_ENV": "staging"}, "GIGWIRE_ENV"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"JWT_ALGORITHM": "none"}, "JWT_ALGORITHM"),
        ({"JWT_ALGORITHM": "RS256"}, "JWT_PRIVATE_KEY_FILE"),
        ({"ACCESS_TOKEN_TTL": "2 hours"}, "ACCESS_TOKEN_TTL"),
        ({"PLATFORM_FEE_BPS": "-1"}, "PLATFORM_FEE_BPS"),
        (
            {
                "GIGWIRE_ENV": "production",
                "JWT_SECRET": "s" * 40,
                "OTP_SENDER": "webhook",
                "OTP_WEBHOOK_URL": "https://otp.example",
            },
            "PAYMENT_GATEWAY",
        ),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], variable: str, tmp_path: Any) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"GIGWIRE_DATA_DIR": str(tmp_path), **env})
    assert info.value.variable == variable
    assert "\n" not in str(info.value)


def test_dev_defaults_and_kept_secret(tmp_path: Any) -> None:
    first = Settings.from_env({"GIGWIRE_DATA_DIR": str(tmp_path)})
    assert first.env == "dev" and first.embedded_db and first.broker_url == "memory://"
    assert first.port == 8080 and first.access_token_ttl == 7200 and first.refresh_token_ttl == 30 * 86400
    assert len(first.jwt_secret) >= 32
    again = Settings.from_env({"GIGWIRE_DATA_DIR": str(tmp_path)})
    assert again.jwt_secret == first.jwt_secret
    prod = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://db/x",
            "JWT_SECRET": "s" * 40,
            "OTP_SENDER": "webhook",
            "OTP_WEBHOOK_URL": "https://otp.example",
            "PAYMENT_GATEWAY": "razorpay",
            "RAZORPAY_KEY_SECRET": "k",
            "RAZORPAY_WEBHOOK_SECRET": "w",
            "ACCESS_TOKEN_TTL": "15m",
        }
    )
    assert prod.env == "production" and prod.access_token_ttl == 900 and prod.cookie_secure


async def test_concurrent_migrations_apply_once(services: Services) -> None:
    """Two processes starting together: the advisory lock lets one migrate; the other finds it done."""
    name = services.database + "_m"
    admin = await asyncpg.connect(services.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = _with_database(services.admin_dsn, name)
        conns = [await asyncpg.connect(dsn) for _ in range(3)]
        results = await asyncio.gather(*(migrate(c) for c in conns))
        for c in conns:
            await c.close()
        applied = [r for r in results if r]
        assert len(applied) == 1 and applied[0][0] == "0001_core"
        conn = await asyncpg.connect(dsn)
        rows = await conn.fetch("SELECT name FROM schema_migrations ORDER BY name")
        await conn.close()
        assert [r["name"] for r in rows] == applied[0]
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
