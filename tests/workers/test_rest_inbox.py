"""/api/devices and /api/notifications over HTTP: happy paths; every bad input refused, changing nothing."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from domain.notify import NOTIFICATION_TYPES, notify


async def _notify(pool: asyncpg.Pool, user_id: str, n: int, type_: str = "system") -> list[str]:
    ids = []
    for i in range(n):
        # One transaction each: created_at is the transaction's time, which orders the inbox.
        async with pool.acquire() as conn, conn.transaction():
            ids.append(await notify(conn, user_id, type_, f"Title {i}", f"Body {i}", {"i": i}))
    return ids


async def test_devices_register_move_list_and_delete(
    client: Any, pool: asyncpg.Pool, user_factory: Any
) -> None:
    alice, bob = await user_factory(), await user_factory()
    resp = await client.post(
        "/api/devices", json={"token": "fcm:abc-1", "platform": "android"}, headers=alice.headers
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["data"]["token"] == "fcm:abc-1" and body["data"]["platform"] == "android"
    again = await client.post(
        "/api/devices", json={"token": "fcm:abc-1", "platform": "ios"}, headers=alice.headers
    )
    assert again.status == 200
    # The same phone now logged in as bob: the token moves to him.
    moved = await client.post(
        "/api/devices", json={"token": "fcm:abc-1", "platform": "ios"}, headers=bob.headers
    )
    assert moved.status == 200
    assert await pool.fetchval("SELECT user_id::text FROM devices WHERE token = 'fcm:abc-1'") == bob.id
    await client.post("/api/devices", json={"token": "fcm:abc-2", "platform": "web"}, headers=bob.headers)
    listed = await (await client.get("/api/devices", headers=bob.headers)).json()
    assert {d["token"] for d in listed["data"]} == {"fcm:abc-1", "fcm:abc-2"}
    assert (await (await client.get("/api/devices", headers=alice.headers)).json())["data"] == []
    # alice cannot remove bob's token
    resp = await client.delete("/api/devices/fcm:abc-1", headers=alice.headers)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    resp = await client.delete("/api/devices/fcm:abc-1", headers=bob.headers)
    assert resp.status == 200 and (await resp.json())["data"] == {"token": "fcm:abc-1", "deleted": True}
    assert await pool.fetchval("SELECT count(*) FROM devices WHERE token = 'fcm:abc-1'") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"platform": "android"}, "token"),
        ({"token": "", "platform": "android"}, "token"),
        ({"token": "has space", "platform": "android"}, "token"),
        ({"token": "t" * 4097, "platform": "android"}, "token"),
        ({"token": 12, "platform": "android"}, "token"),
        ({"token": "ok-token"}, "platform"),
        ({"token": "ok-token", "platform": "windows"}, "platform"),
        ({"token": "ok-token", "platform": "android", "user": "x"}, "user"),
    ],
)
async def test_bad_device_input_is_refused(
    client: Any, pool: asyncpg.Pool, user_factory: Any, body: dict[str, Any], field: str
) -> None:
    user = await user_factory()
    resp = await client.post("/api/devices", json=body, headers=user.headers)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "bad_request" and field in error["details"]["fields"]
    assert await pool.fetchval("SELECT count(*) FROM devices WHERE user_id = $1", user.id) == 0


async def test_routes_need_a_token(client: Any) -> None:
    for method, path in [
        ("POST", "/api/devices"),
        ("GET", "/api/devices"),
        ("DELETE", "/api/devices/x"),
        ("GET", "/api/notifications"),
        ("GET", "/api/notifications/unread-count"),
        ("POST", "/api/notifications/mark-all-read"),
        ("DELETE", "/api/notifications/clear-all"),
        ("GET", "/api/notifications/preferences"),
        ("PUT", "/api/notifications/preferences"),
    ]:
        resp = await client.request(method, path)
        assert resp.status == 401, (method, path)


async def test_inbox_pages_counts_reads_and_deletes(
    client: Any, pool: asyncpg.Pool, user_factory: Any
) -> None:
    user, other = await user_factory(), await user_factory()
    ids = await _notify(pool, user.id, 25)
    await _notify(pool, other.id, 2)
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": "10", **({"cursor": cursor} if cursor else {})}
        body = await (await client.get("/api/notifications", params=query, headers=user.headers)).json()
        seen += [n["id"] for n in body["data"]]
        assert body["unreadCount"] == 25
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))  # newest first, no gap, no repeat
    first = body["data"][-1]
    assert first["title"] == "Title 0" and first["read"] is False and isinstance(first["createdAt"], int)

    resp = await client.post(f"/api/notifications/{ids[0]}/read", headers=user.headers)
    assert resp.status == 200 and (await resp.json())["data"]["read"] is True
    count = await (await client.get("/api/notifications/unread-count", headers=user.headers)).json()
    assert count["data"] == {"count": 24}
    unread = await (await client.get("/api/notifications?unread=true&limit=100", headers=user.headers)).json()
    assert ids[0] not in {n["id"] for n in unread["data"]} and len(unread["data"]) == 24

    # someone else's notification: 404, nothing changes
    theirs = await pool.fetchval("SELECT id::text FROM notifications WHERE user_id = $1 LIMIT 1", other.id)
    assert (await client.post(f"/api/notifications/{theirs}/read", headers=user.headers)).status == 404
    assert (await client.delete(f"/api/notifications/{theirs}", headers=user.headers)).status == 404
    assert await pool.fetchval("SELECT read_at IS NULL FROM notifications WHERE id = $1", theirs)

    resp = await client.post("/api/notifications/mark-all-read", headers=user.headers)
    assert (await resp.json())["data"] == {"updated": 24}
    resp = await client.delete(f"/api/notifications/{ids[1]}", headers=user.headers)
    assert resp.status == 200
    assert (await client.delete(f"/api/notifications/{ids[1]}", headers=user.headers)).status == 404
    resp = await client.delete("/api/notifications/clear-all", headers=user.headers)
    assert (await resp.json())["data"] == {"deleted": 24}
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE user_id = $1", other.id) == 2


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "limit=ten", "unread=maybe", "cursor=!!!", "cursor=bm90LWEtY3Vyc29y"],
)
async def test_bad_list_parameters(client: Any, user_factory: Any, query: str) -> None:
    user = await user_factory()
    resp = await client.get(f"/api/notifications?{query}", headers=user.headers)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "bad_request"


async def test_malformed_notification_id_is_not_found(client: Any, user_factory: Any) -> None:
    user = await user_factory()
    assert (await client.post("/api/notifications/not-a-uuid/read", headers=user.headers)).status == 404


async def test_preferences_get_put_and_effect(client: Any, pool: asyncpg.Pool, user_factory: Any) -> None:
    user = await user_factory()
    body = await (await client.get("/api/notifications/preferences", headers=user.headers)).json()
    everything_on = {"inbox": True, "live": True, "push": True, "inApp": True}
    assert body["data"] == {t: everything_on for t in NOTIFICATION_TYPES}
    resp = await client.put(
        "/api/notifications/preferences",
        json={"chat_message": {"push": False}, "review": {"inApp": False, "push": False}},
        headers=user.headers,
    )
    assert resp.status == 200, await resp.text()
    data = (await resp.json())["data"]
    assert data["chat_message"] == {"inbox": True, "live": True, "push": False, "inApp": True}
    assert data["review"] == {"inbox": False, "live": True, "push": False, "inApp": False}
    # a later partial change keeps the other channel
    resp = await client.put(
        "/api/notifications/preferences", json={"chat_message": {"inApp": False}}, headers=user.headers
    )
    assert (await resp.json())["data"]["chat_message"] == {
        "inbox": False,
        "live": True,
        "push": False,
        "inApp": False,
    }
    await _notify(pool, user.id, 1, "review")
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE user_id = $1", user.id) == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"nonsense": {"push": False}},
        {"review": {"email": True}},
        {"review": {"push": "no"}},
        {"review": {}},
        {"review": True},
        {"review": {"push": False}, "unknown_type": {"push": False}},
    ],
)
async def test_bad_preferences_change_nothing(
    client: Any, pool: asyncpg.Pool, user_factory: Any, body: dict[str, Any]
) -> None:
    user = await user_factory()
    resp = await client.put("/api/notifications/preferences", json=body, headers=user.headers)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "bad_request"
    assert (
        await pool.fetchval("SELECT count(*) FROM notification_preferences WHERE user_id = $1", user.id) == 0
    )
