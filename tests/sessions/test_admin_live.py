"""Admin actions seen live across a cluster.

A ban closes the banned user's sessions on both transports and on every node: two real hub
processes on one Redis and the relay of a real worker process. Alice chats on /ws on hub A and on
Socket.IO on hub B; an admin bans her through hub B's REST API; both sessions get ERROR unauthorized
and close within a second, the other party's session stays, and her token is refused everywhere
from then on (realtime connect, REST 403 banned, refresh 403 banned)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from hub.settings import Settings
from tests.factories import TestUser, make_order, make_user
from tests.media.conftest import form, image_bytes
from tests.sessions.conftest import Cluster, login, sio_open, sio_refused, ws_open
from tests.sessions.test_revocation import _assert_refused_4401, _ws_refused

WITHIN_S = 1.0


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_ban_closes_both_transports_on_both_nodes(
    http: aiohttp.ClientSession, cluster: Cluster, pool: asyncpg.Pool, settings: Settings
) -> None:
    hub_a, hub_b = cluster.hubs[0].url, cluster.hubs[1].url
    alice = await login(http, cluster)
    bob = await make_user(pool, settings)
    admin = await make_user(pool, settings, roles=("client", "admin"))
    order_id = await make_order(pool, TestUser(alice.user_id, alice.phone, alice.token), bob)

    ws = await ws_open(http, hub_a, alice.token)
    await ws.wait_for("AUTHENTICATED")
    await ws.send("SUBSCRIBE_CHAT", {"orderId": order_id}, ref="s")
    await ws.wait_for("ACK")
    await ws.send("CHAT_MESSAGE", {"orderId": order_id, "text": "hello"}, ref="m")
    await ws.wait_for("CHAT_MESSAGE")
    sio = await sio_open(hub_b, alice.token)
    bob_ws = await ws_open(http, hub_b, bob.token)
    await bob_ws.wait_for("AUTHENTICATED")

    async with http.post(
        f"{hub_b}/api/admin/users/{alice.user_id}/ban", json={"reason": "scam"}, headers=admin.headers
    ) as resp:
        assert resp.status == 200, await resp.text()
    async with asyncio.timeout(WITHIN_S + 1):  # the relay's publish, then each hub closes
        await asyncio.gather(ws.ended.wait(), sio.ended.wait())
    _assert_refused_4401(ws)
    _assert_refused_4401(sio)
    banned_words = [f["data"]["message"] for f in ws.frames if f["type"] == "ERROR"]
    assert "banned" in banned_words[-1], banned_words
    # The other party is untouched.
    await bob_ws.send("PING", ref="p")
    await bob_ws.wait_for("PONG")
    assert not bob_ws.ended.is_set()

    # Her token is refused from now on, everywhere.
    await _ws_refused(http, hub_a, alice.token)
    refused = await sio_refused(hub_b, alice.token)
    assert refused["code"] == "unauthorized", refused
    for hub in (hub_a, hub_b):
        async with http.get(
            f"{hub}/api/users/me", headers={"Authorization": f"Bearer {alice.token}"}
        ) as resp:
            body = await resp.json()
            assert resp.status == 403 and body["error"]["details"] == {"reason": "banned"}, body
    async with http.post(f"{hub_a}/api/auth/refresh", json={"refreshToken": alice.refresh}) as resp:
        assert resp.status in (401, 403), await resp.text()
    await bob_ws.close()


async def test_ban_refuses_a_token_without_a_login(
    http: aiohttp.ClientSession, cluster: Cluster, pool: asyncpg.Pool, settings: Settings
) -> None:
    """A token that names no refresh-token family (nothing for the ban to revoke) is refused for the
    ban itself: the standing check reads users.banned_at."""
    hub_a, hub_b = cluster.hubs[0].url, cluster.hubs[1].url
    carol = await make_user(pool, settings)
    admin = await make_user(pool, settings, roles=("client", "admin"))
    sio = await sio_open(hub_a, carol.token)
    async with http.post(
        f"{hub_a}/api/admin/users/{carol.id}/ban", json={"reason": "spam"}, headers=admin.headers
    ) as resp:
        assert resp.status == 200, await resp.text()
    async with asyncio.timeout(WITHIN_S + 1):
        await sio.ended.wait()
    _assert_refused_4401(sio)
    await _ws_refused(http, hub_b, carol.token)
    refused = await sio_refused(hub_a, carol.token)
    assert refused["code"] == "unauthorized" and "banned" in refused["message"], refused
    async with http.post(f"{hub_a}/api/admin/users/{carol.id}/unban", json={}, headers=admin.headers) as resp:
        assert resp.status == 200
    again = await sio_open(hub_b, carol.token)  # unbanned: the same token opens a session again
    await again.close()


async def test_id_decision_reaches_the_user_live(
    http: aiohttp.ClientSession, cluster: Cluster, pool: asyncpg.Pool, settings: Settings
) -> None:
    """Upload the document and submit it through hub A, approve through hub B: the user's /ws
    session on hub A gets the NOTIFICATION (through the outbox and the worker's relay) and their
    profile says idVerified."""
    hub_a, hub_b = cluster.hubs[0].url, cluster.hubs[1].url
    dave = await login(http, cluster)
    admin = await make_user(pool, settings, roles=("client", "admin"))
    auth = {"Authorization": f"Bearer {dave.token}"}
    ws = await ws_open(http, hub_a, dave.token)
    await ws.wait_for("AUTHENTICATED")
    upload = form("id_document", image_bytes(), "id.png")
    async with http.post(f"{hub_a}/api/media", data=upload, headers=auth) as resp:
        assert resp.status == 201, await resp.text()
        document = (await resp.json())["data"]["id"]
    async with http.post(
        f"{hub_a}/api/users/me/id-verification", json={"documentMediaId": document}, headers=auth
    ) as resp:
        assert resp.status == 201, await resp.text()
        verification = (await resp.json())["data"]["id"]
    async with http.post(
        f"{hub_b}/api/admin/id-verifications/{verification}/approve", json={}, headers=admin.headers
    ) as resp:
        assert resp.status == 200, await resp.text()
    note = await ws.wait_for("NOTIFICATION", within=5)
    assert note["data"]["data"]["event"] == "id_verified" and note["data"]["type"] == "system", note
    async with http.get(f"{hub_b}/api/users/me", headers=auth) as resp:
        assert (await resp.json())["data"]["idVerified"] is True
    await ws.close()
