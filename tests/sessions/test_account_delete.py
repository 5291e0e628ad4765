"""DELETE /api/users/me ends every session of the account on every hub and both transports (through
SESSION_REVOKED in the deletion's transaction, published by the worker's relay), and every token of
it is refused from then on: access tokens on REST and the realtime doors, refresh tokens."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.rest.conftest import skip_resend_gap
from tests.services import Services
from tests.sessions.conftest import Cluster, login, sio_refused
from tests.sessions.test_revocation import WITHIN_S, _all_ended, _assert_refused_4401, _sessions, _ws_refused


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_account_deletion_closes_every_session_and_refuses_every_token(
    cluster: Cluster, http: aiohttp.ClientSession, pool: asyncpg.Pool, services: Services
) -> None:
    first = await login(http, cluster)
    await skip_resend_gap(services, first.phone)
    second = await login(http, cluster, first.phone)
    doomed = [*await _sessions(http, cluster, first), *await _sessions(http, cluster, second)]
    bystander = await login(http, cluster)
    kept = await _sessions(http, cluster, bystander)

    started = time.monotonic()
    headers = {"Authorization": f"Bearer {first.token}"}
    async with http.delete(cluster.hubs[0].url + "/api/users/me", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
    await _all_ended(doomed, WITHIN_S + 1.0)
    slowest = max(s.ended_at for s in doomed) - started
    assert slowest <= WITHIN_S, f"the last session closed {slowest:.3f} s after the deletion"
    for session in doomed:
        _assert_refused_4401(session)
    assert not any(s.ended.is_set() for s in kept)

    # The row stays, anonymised; every token of it is refused everywhere.
    row = await pool.fetchrow("SELECT phone, deleted_at FROM users WHERE id = $1", first.user_id)
    assert row["phone"] is None and row["deleted_at"] is not None
    for hub in cluster.hubs:
        for who in (first, second):
            await _ws_refused(http, hub.url, who.token)
            refusal = await sio_refused(hub.url, who.token)
            assert refusal["code"] == "unauthorized", refusal
            auth = {"Authorization": f"Bearer {who.token}"}
            async with http.get(hub.url + "/api/users/me", headers=auth) as r:
                body: Any = await r.json()
                assert r.status == 401 and body["error"]["code"] == "unauthorized", body
            async with http.post(hub.url + "/api/auth/refresh", json={"refreshToken": who.refresh}) as r:
                assert r.status == 401, await r.text()
    # The phone logs in again as a new, empty account.
    await skip_resend_gap(services, first.phone)
    again = await login(http, cluster, first.phone)
    assert again.user_id != first.user_id
