"""GET/PUT /api/notifications/preferences with the three channels: inbox, live, push; inApp is
still accepted and answered as the old name of inbox."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from domain.notify import NOTIFICATION_TYPES
from hub.settings import Settings
from tests.factories import make_user


async def test_three_channels_and_the_in_app_alias(
    client: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user(pool, settings)
    assert set(NOTIFICATION_TYPES) == {
        "new_application", "application", "order_update", "payment", "chat_message", "review", "system",
    }  # fmt: skip
    resp = await client.put(
        "/api/notifications/preferences",
        json={
            "application": {"live": False},
            "payment": {"inApp": False},
            "review": {"inbox": False, "push": False},
        },
        headers=user.headers,
    )
    assert resp.status == 200, await resp.text()
    data = (await resp.json())["data"]
    assert data["application"] == {"inbox": True, "live": False, "push": True, "inApp": True}
    assert data["payment"] == {"inbox": False, "live": True, "push": True, "inApp": False}
    assert data["review"] == {"inbox": False, "live": True, "push": False, "inApp": False}
    stored = await pool.fetchrow(
        "SELECT in_app, live, push FROM notification_preferences WHERE user_id = $1 AND type = 'application'",
        user.id,
    )
    assert tuple(stored) == (True, False, True)
    # inbox and inApp are one channel: two different values for it are refused.
    resp = await client.put(
        "/api/notifications/preferences",
        json={"payment": {"inbox": True, "inApp": False}},
        headers=user.headers,
    )
    assert resp.status == 400
    body = await resp.json()
    assert "payment" in body["error"]["details"]["fields"]
    resp = await client.put(
        "/api/notifications/preferences",
        json={"payment": {"inbox": True, "inApp": True}},
        headers=user.headers,
    )
    assert (await resp.json())["data"]["payment"]["inbox"] is True
    resp = await client.get("/api/notifications/preferences", headers=user.headers)
    assert (await resp.json())["data"]["review"] == {
        "inbox": False,
        "live": True,
        "push": False,
        "inApp": False,
    }


@pytest.mark.parametrize("body", [{"payment": {}}, {"payment": {"live": "no"}}, {"payment": {"email": True}}])
async def test_bad_channel_changes_are_refused(
    client: Any, pool: asyncpg.Pool, settings: Settings, body: dict[str, Any]
) -> None:
    user = await make_user(pool, settings)
    resp = await client.put("/api/notifications/preferences", json=body, headers=user.headers)
    assert resp.status == 400
    assert (
        await pool.fetchval("SELECT count(*) FROM notification_preferences WHERE user_id = $1", user.id) == 0
    )
