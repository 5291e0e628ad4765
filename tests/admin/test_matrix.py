"""The authorization matrix, taken from the route table (so a new route is covered without editing
this file): every admin route refuses a stranger without a token (401), a user without the admin
role (403), an admin demoted since their token was issued (403) and a banned admin (403,
details.reason banned); every route refuses a banned user's token; every route that needs a token
refuses none, a forged one and a deleted account's (401). None of them changes anything."""

from __future__ import annotations

import importlib
import re
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from hub.settings import Settings
from rest import MODULES
from rest.api import Operation, Routes
from tests.factories import make_user


def _admin_operations() -> list[Operation]:
    found: list[Operation] = []
    for name in MODULES:
        routes: Routes = importlib.import_module(name).routes
        found += [op for op in routes.operations if op.path.startswith("/api/admin/")]
    return found


OPERATIONS = _admin_operations()


def test_the_table_lists_the_admin_routes() -> None:
    paths = {(op.method, op.path) for op in OPERATIONS}
    assert ("post", "/api/admin/users/{id}/ban") in paths
    assert ("get", "/api/admin/audit") in paths
    assert len(paths) >= 5


async def _counts(pool: asyncpg.Pool) -> tuple[Any, ...]:
    return tuple(
        [
            await pool.fetchval("SELECT count(*) FROM admin_audit"),
            await pool.fetchval("SELECT count(*) FROM users WHERE banned_at IS NOT NULL"),
            await pool.fetchval("SELECT count(*) FROM outbox"),
        ]
    )


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.method.upper()} {op.path}")
async def test_refuses_strangers_non_admins_and_banned(
    client: TestClient[Any, Any], pool: asyncpg.Pool, settings: Settings, op: Operation
) -> None:
    user = await make_user(pool, settings)
    banned_admin = await make_user(pool, settings, roles=("client", "admin"))
    await pool.execute("UPDATE users SET banned_at = now() WHERE id = $1", banned_admin.id)
    demoted = await make_user(pool, settings, roles=("client", "admin"))  # the token still says admin
    await pool.execute("UPDATE users SET roles = '{client}' WHERE id = $1", demoted.id)
    path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), op.path)
    body: dict[str, Any] = {"reason": "because", "note": "n"}
    before = await _counts(pool)
    cases: list[tuple[dict[str, str], int, str | None]] = [
        ({}, 401, None),
        ({"Authorization": "Bearer not-a-token"}, 401, None),
        (user.headers, 403, None),
        (demoted.headers, 403, None),
        (banned_admin.headers, 403, "banned"),
    ]
    for headers, status, reason in cases:
        kw: dict[str, Any] = {"headers": headers}
        if op.method in ("post", "put", "patch"):
            kw["json"] = body
        r = await client.request(op.method.upper(), path, **kw)
        answer = await r.json()
        assert r.status == status, (op.path, headers, answer)
        assert answer["success"] is False
        if reason is not None:
            assert answer["error"]["details"] == {"reason": reason}
    assert await _counts(pool) == before


def _all_operations() -> list[Operation]:
    found: list[Operation] = []
    for name in MODULES:
        routes: Routes = importlib.import_module(name).routes
        found += [op for op in routes.operations if not op.path.startswith("/api/auth/")]
    return found


@pytest.mark.parametrize("op", _all_operations(), ids=lambda op: f"{op.method.upper()} {op.path}")
async def test_every_route_refuses_a_banned_user(
    client: TestClient[Any, Any], pool: asyncpg.Pool, settings: Settings, op: Operation
) -> None:
    """Whatever the route (public ones too, when the banned user's token is sent), 403 banned before
    the handler runs. /api/auth/ takes no access token (login and refresh refuse a ban themselves)."""
    banned = await make_user(pool, settings)
    await pool.execute("UPDATE users SET banned_at = now() WHERE id = $1", banned.id)
    path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), op.path)
    before = await _counts(pool)
    kw: dict[str, Any] = {"headers": banned.headers}
    if op.method in ("post", "put", "patch"):
        kw["json"] = {}
    r = await client.request(op.method.upper(), path, **kw)
    answer = await r.json()
    assert r.status == 403 and answer["error"]["details"] == {"reason": "banned"}, (op.path, answer)
    assert await _counts(pool) == before


def _token_operations() -> list[Operation]:
    found: list[Operation] = []
    for name in MODULES:
        routes: Routes = importlib.import_module(name).routes
        found += [op for op in routes.operations if op.auth is True and op.security is None]
    return found


@pytest.mark.parametrize("op", _token_operations(), ids=lambda op: f"{op.method.upper()} {op.path}")
async def test_every_route_that_needs_a_token_refuses_strangers_and_deleted_users(
    client: TestClient[Any, Any], pool: asyncpg.Pool, settings: Settings, op: Operation
) -> None:
    """Every route the table marks as needing a user's token (so each new one is covered): 401 with
    no token, a forged one, or the token of an account deleted since (DELETE /api/users/me
    anonymises the row and sets deleted_at), and nothing changes."""
    gone = await make_user(pool, settings)
    r = await client.delete("/api/users/me", headers=gone.headers)
    assert r.status == 200, await r.text()
    path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), op.path)
    before = await _counts(pool)
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, gone.headers):
        kw: dict[str, Any] = {"headers": headers}
        if op.method in ("post", "put", "patch"):
            kw["json"] = {}
        r = await client.request(op.method.upper(), path, **kw)
        answer = await r.json()
        assert r.status == 401 and answer["error"]["code"] == "unauthorized", (op.path, headers, answer)
    assert await _counts(pool) == before
