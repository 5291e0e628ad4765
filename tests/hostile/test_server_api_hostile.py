"""Hostile requests to the server API (/api/server/*) made WITH a valid API key of every scope, so
that hostile paths, queries, headers and bodies reach the handlers behind the key check (the route
family fuzz of test_rest_hostile.py mostly meets its 401). Every answer is below 500, in the error
shape when an error, with no ERROR record in the server's log."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from hub.db import create_pool
from rest import api_keys
from tests.hostile.conftest import LiveServer, World, server_errors
from tests.hostile.test_rest_hostile import KNOWN_LOG_LINES, cases, family_routes, problems


async def _key(live: LiveServer) -> str:
    assert live.settings.database_url is not None
    pool = await create_pool(live.settings.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            _, key = await api_keys.create(conn, "hostile", list(api_keys.SCOPES))
    finally:
        await pool.close()
    return key


def test_hostile_requests_with_a_valid_key(
    live: LiveServer, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    routes = family_routes(live, "server")
    assert len(routes) == 4, routes
    key = live.run(_key(live))
    document = live.http("GET", b"/api/openapi.json", {}).json()
    seen: set[str] = set()

    @hypothesis_settings(
        max_examples=120,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def exercise(data: st.DataObject) -> None:
        route = data.draw(st.sampled_from(routes), label="route")
        case = data.draw(cases(route, world, document), label="case")
        style = data.draw(st.sampled_from(["X-Api-Key", "Authorization"]), label="key style")
        case.headers[style] = key.encode() if style == "X-Api-Key" else b"Bearer " + key.encode()
        caplog.clear()
        reply = live.http(case.route.method, case.target, case.headers, case.body)
        found = problems(case, reply, server_errors(caplog.records, ignore=KNOWN_LOG_LINES))
        assert not found, f"{case}\n" + "\n".join(found)
        if reply.status < 400:
            seen.add(str(route))

    exercise()
    assert len(seen) >= 2, f"too few routes answered 2xx: {seen}"
