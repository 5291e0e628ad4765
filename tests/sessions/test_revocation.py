"""Logout, a revoked refresh-token family and a deleted user end sessions everywhere: two real hub
processes on one Redis, the relay of a real worker process, both transports. Each session of the
login (only that login's) gets ERROR unauthorized and close 4401 within a second of the logout's
answer or the deletion's commit, and the tokens are refused from then on wherever they are shown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import jwt
import pytest

from hub.codes import UNAUTHORIZED
from tests.rest.conftest import skip_resend_gap
from tests.services import Services
from tests.sessions.conftest import (
    Cluster,
    Login,
    SioClient,
    WsClient,
    login,
    sio_open,
    sio_refused,
    ws_open,
)

WITHIN_S = 1.0


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _sessions(http: aiohttp.ClientSession, cluster: Cluster, who: Login) -> list[WsClient | SioClient]:
    """A /ws and a Socket.IO session of `who` on each hub."""
    opened: list[WsClient | SioClient] = []
    for hub in cluster.hubs:
        ws = await ws_open(http, hub.url, who.token)
        await ws.wait_for("AUTHENTICATED")
        opened.append(ws)
        opened.append(await sio_open(hub.url, who.token))
    return opened


async def _all_ended(sessions: list[WsClient | SioClient], within: float) -> None:
    async with asyncio.timeout(within):
        await asyncio.gather(*(s.ended.wait() for s in sessions))


def _assert_refused_4401(session: WsClient | SioClient) -> None:
    """ERROR unauthorized, then the close: 4401 on /ws; on Socket.IO the namespace is disconnected."""
    if isinstance(session, WsClient):
        assert session.close_code == UNAUTHORIZED, session.close_code
        errors = [f for f in session.frames if f["type"] == "ERROR"]
        assert errors and errors[-1]["data"]["code"] == "unauthorized", session.frames
        assert not any(f["type"] == "SESSION_REVOKED" for f in session.frames)
    else:
        errors = [d for name, d in session.events if name == "ERROR"]
        assert errors and errors[-1]["code"] == "unauthorized", session.events
        assert not any(name == "SESSION_REVOKED" for name, _ in session.events)


async def _ws_refused(http: aiohttp.ClientSession, base: str, token: str) -> None:
    """A token given in the query and in a first AUTHENTICATE frame: ERROR unauthorized, close 4401."""
    query = await ws_open(http, base, token)
    await asyncio.wait_for(query.ended.wait(), 5)
    assert query.close_code == UNAUTHORIZED and query.types() == ["ERROR"], (query.close_code, query.frames)
    frame = await ws_open(http, base)
    await frame.send("AUTHENTICATE", {"token": token}, ref="a")
    await asyncio.wait_for(frame.ended.wait(), 5)
    assert frame.close_code == UNAUTHORIZED, frame.close_code
    assert frame.frames[-1]["type"] == "ERROR" and frame.frames[-1]["ref"] == "a", frame.frames
    assert "AUTHENTICATED" not in frame.types()


async def test_logout_closes_that_logins_sessions_on_both_hubs_and_transports_within_a_second(
    cluster: Cluster, http: aiohttp.ClientSession, services: Services, pool: asyncpg.Pool
) -> None:
    first = await login(http, cluster)
    # The same user's second login (another family) must live on.
    await skip_resend_gap(services, first.phone)
    second = await login(http, cluster, first.phone)
    assert second.user_id == first.user_id
    # Each login's access token names its refresh-token family (claim `fam`).
    families = [jwt.decode(w.token, options={"verify_signature": False})["fam"] for w in (first, second)]
    stored = await pool.fetch(
        "SELECT DISTINCT family_id::text AS f FROM refresh_tokens WHERE user_id = $1", first.user_id
    )
    assert families[0] != families[1] and set(families) == {r["f"] for r in stored}
    doomed = await _sessions(http, cluster, first)
    kept = await ws_open(http, cluster.hubs[1].url, second.token)
    await kept.wait_for("AUTHENTICATED")

    started = time.monotonic()
    async with http.post(
        cluster.hubs[0].url + "/api/auth/logout", json={"refreshToken": first.refresh}
    ) as resp:
        assert resp.status == 200, await resp.text()
    await _all_ended(doomed, WITHIN_S + 1.0)
    slowest = max(s.ended_at for s in doomed) - started
    assert slowest <= WITHIN_S, f"the last session closed {slowest:.3f} s after the logout was sent"
    for session in doomed:
        _assert_refused_4401(session)

    # The other login's session is untouched and serves on.
    await kept.send("PING", ref="p")
    assert (await kept.wait_for("PONG"))["ref"] == "p"
    assert not kept.ended.is_set()

    # The logged-out token is refused everywhere: query, first frame, handshake, re-AUTHENTICATE.
    for hub in cluster.hubs:
        await _ws_refused(http, hub.url, first.token)
        refusal = await sio_refused(hub.url, first.token)
        assert refusal["code"] == "unauthorized", refusal
    mark = len(kept.frames)
    await kept.send("AUTHENTICATE", {"token": first.token}, ref="again")
    await asyncio.wait_for(kept.ended.wait(), 5)
    assert kept.close_code == UNAUTHORIZED
    assert [f["type"] for f in kept.frames[mark:]] == ["ERROR"], kept.frames[mark:]


async def test_refresh_reuse_revokes_the_family_and_closes_its_sessions(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    who = await login(http, cluster)
    doomed = await _sessions(http, cluster, who)
    base = cluster.hubs[1].url
    async with http.post(base + "/api/auth/refresh", json={"refreshToken": who.refresh}) as resp:
        assert resp.status == 200
        renewed = (await resp.json())["data"]
    # A session opened with the renewed token belongs to the same login: it goes too.
    later = await ws_open(http, base, renewed["token"])
    await later.wait_for("AUTHENTICATED")
    doomed.append(later)
    # The cluster runs with REFRESH_REUSE_GRACE=0: a second use of the old token is reuse at once.
    async with http.post(base + "/api/auth/refresh", json={"refreshToken": who.refresh}) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["details"]["reason"] == "reused"
    await _all_ended(doomed, WITHIN_S + 1.0)
    for session in doomed:
        _assert_refused_4401(session)
    await _ws_refused(http, base, renewed["token"])


async def test_a_deleted_user_has_every_session_closed_and_every_token_refused(
    cluster: Cluster, http: aiohttp.ClientSession, pool: asyncpg.Pool, services: Services
) -> None:
    first = await login(http, cluster)
    await skip_resend_gap(services, first.phone)
    second = await login(http, cluster, first.phone)
    doomed = [*await _sessions(http, cluster, first), *await _sessions(http, cluster, second)]

    started = time.monotonic()
    deleted = await pool.execute("DELETE FROM users WHERE id = $1", first.user_id)
    assert deleted == "DELETE 1"
    await _all_ended(doomed, WITHIN_S + 1.0)
    slowest = max(s.ended_at for s in doomed) - started
    assert slowest <= WITHIN_S, f"the last session closed {slowest:.3f} s after the delete"
    for session in doomed:
        _assert_refused_4401(session)

    for hub in cluster.hubs:
        for token in (first.token, second.token):
            await _ws_refused(http, hub.url, token)
            refusal = await sio_refused(hub.url, token)
            assert refusal["code"] == "unauthorized", refusal
            async with http.get(hub.url + "/api/users/me", headers={"Authorization": f"Bearer {token}"}) as r:
                body: Any = await r.json()
                assert r.status == 401 and body["error"]["code"] == "unauthorized", body
