"""Refresh-token rotation, reuse detection, logout, and the one winner of concurrent refreshes."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from rest.refresh import token_hash
from tests.rest.conftest import CapturingSender, login, skip_resend_gap
from tests.services import Services

Client = TestClient[Any, Any]


async def refresh(api: Client, token: str | None) -> Any:
    return await api.post("/api/auth/refresh", json={} if token is None else {"refreshToken": token})


async def reason_of(resp: Any) -> str:
    body = await resp.json()
    assert resp.status == 401, body
    assert body["success"] is False and body["error"]["code"] == "unauthorized"
    message = body["error"]["message"]
    assert any(hint in message for hint in ("log in again", "Send the refresh token", "use the tokens"))
    reason: str = body["error"]["details"]["reason"]
    return reason


async def live_tokens(pool: asyncpg.Pool, user_id: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL"
            " AND rotated_at IS NULL",
            user_id,
        )
    )


async def test_refresh_rotates_and_the_new_access_token_works(
    api: Client, sender: CapturingSender, pool: asyncpg.Pool
) -> None:
    session = await login(api, sender)
    resp = await refresh(api, session["refreshToken"])
    body = await resp.json()
    assert resp.status == 200, body
    data = body["data"]
    assert set(data) == {"token", "refreshToken", "expiresIn"}
    assert data["refreshToken"] != session["refreshToken"]
    assert resp.headers["Set-Cookie"].startswith(f"refreshToken={data['refreshToken']};")
    me = await api.get("/api/users/me", headers={"Authorization": f"Bearer {data['token']}"})
    assert (await me.json())["data"]["id"] == session["user"]["id"]
    rows = await pool.fetch(
        "SELECT family_id, rotated_at FROM refresh_tokens WHERE user_id = $1", session["user"]["id"]
    )
    assert len(rows) == 2 and len({r["family_id"] for r in rows}) == 1
    assert await live_tokens(pool, session["user"]["id"]) == 1
    stored = await pool.fetchval(
        "SELECT count(*) FROM refresh_tokens WHERE token_hash = $1", token_hash(data["refreshToken"])
    )
    assert stored == 1


async def test_refresh_reads_the_cookie(api: Client, sender: CapturingSender) -> None:
    await login(api, sender)  # the client's cookie jar keeps the refreshToken cookie
    first = await refresh(api, None)
    assert first.status == 200, await first.text()
    second = await refresh(api, None)  # the jar now holds the rotated token
    assert second.status == 200, await second.text()
    api.session.cookie_jar.clear()
    assert await reason_of(await refresh(api, None)) == "missing"


async def test_reused_refresh_token_revokes_the_whole_family(
    api: Client, sender: CapturingSender, pool: asyncpg.Pool
) -> None:
    session = await login(api, sender)
    first = await refresh(api, session["refreshToken"])
    newer = (await first.json())["data"]["refreshToken"]
    await age_rotations(pool, session["user"]["id"])
    resp = await refresh(api, session["refreshToken"])
    assert await reason_of(resp) == "reused"
    assert "refreshToken=;" in resp.headers["Set-Cookie"] or 'refreshToken="";' in resp.headers["Set-Cookie"]
    assert await live_tokens(pool, session["user"]["id"]) == 0
    assert await reason_of(await refresh(api, newer)) == "revoked"


async def test_reuse_leaves_other_logins_alone(
    api: Client, sender: CapturingSender, services: Services, pool: asyncpg.Pool
) -> None:
    phone_session = await login(api, sender)
    await skip_resend_gap(services, phone_session["user"]["phone"])
    laptop = await login(api, sender, phone_session["user"]["phone"])
    await refresh(api, phone_session["refreshToken"])
    await age_rotations(pool, phone_session["user"]["id"])
    assert await reason_of(await refresh(api, phone_session["refreshToken"])) == "reused"
    resp = await refresh(api, laptop["refreshToken"])
    assert resp.status == 200, await resp.text()


async def test_logout_revokes_and_clears_the_cookie_and_is_idempotent(
    api: Client, sender: CapturingSender, pool: asyncpg.Pool
) -> None:
    session = await login(api, sender)
    rotated = (await (await refresh(api, session["refreshToken"])).json())["data"]["refreshToken"]
    resp = await api.post("/api/auth/logout", json={"refreshToken": rotated})
    body = await resp.json()
    assert resp.status == 200, body
    assert body == {"success": True, "data": {"loggedOut": True}}
    cookie = resp.headers["Set-Cookie"]
    assert "Max-Age=0" in cookie and "Path=/api/auth" in cookie
    assert await reason_of(await refresh(api, rotated)) == "revoked"
    assert await live_tokens(pool, session["user"]["id"]) == 0
    again = await api.post("/api/auth/logout", json={"refreshToken": rotated})
    assert again.status == 200
    nothing = await api.post("/api/auth/logout")
    assert nothing.status == 200
    unknown = await api.post("/api/auth/logout", json={"refreshToken": "not-a-token"})
    assert unknown.status == 200


async def test_logout_with_the_cookie(api: Client, sender: CapturingSender) -> None:
    session = await login(api, sender)
    resp = await api.post("/api/auth/logout")
    assert resp.status == 200
    assert await reason_of(await refresh(api, session["refreshToken"])) == "revoked"


async def test_unknown_and_expired_refresh_tokens_are_refused(
    api: Client, sender: CapturingSender, pool: asyncpg.Pool
) -> None:
    assert await reason_of(await refresh(api, "made-up")) == "unknown"
    session = await login(api, sender)
    await pool.execute(
        "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = $1",
        token_hash(session["refreshToken"]),
    )
    assert await reason_of(await refresh(api, session["refreshToken"])) == "expired"
    # Refused, not consumed: nothing was rotated.
    rotated = await pool.fetchval(
        "SELECT rotated_at FROM refresh_tokens WHERE token_hash = $1", token_hash(session["refreshToken"])
    )
    assert rotated is None


@pytest.mark.parametrize(
    "body",
    [{"refreshToken": 5}, {"refreshToken": "x", "extra": 1}, {"token": "x"}, {"refreshToken": "x" * 600}],
)
async def test_refresh_refuses_a_bad_body_and_changes_nothing(
    api: Client, sender: CapturingSender, pool: asyncpg.Pool, body: dict[str, Any]
) -> None:
    session = await login(api, sender)
    resp = await api.post("/api/auth/refresh", json=body)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["code"] == "bad_request"
    assert await live_tokens(pool, session["user"]["id"]) == 1


async def test_concurrent_refreshes_of_one_token_have_one_winner(
    api: Client, sender: CapturingSender, pool: asyncpg.Pool
) -> None:
    session = await login(api, sender)
    api.session.cookie_jar.clear()
    responses = await asyncio.gather(*(refresh(api, session["refreshToken"]) for _ in range(10)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] + [401] * 9, statuses
    losers = [r for r in responses if r.status == 401]
    assert {await reason_of(r) for r in losers} == {"rotated_just_now"}
    assert all("Set-Cookie" not in r.headers for r in losers)
    winner = next(r for r in responses if r.status == 200)
    renewed = (await winner.json())["data"]["refreshToken"]
    # Within the grace period the losers revoke nothing: the winner's new token still works.
    rows = await pool.fetch("SELECT revoked_at FROM refresh_tokens WHERE user_id = $1", session["user"]["id"])
    assert len(rows) == 2 and all(r["revoked_at"] is None for r in rows)
    again = await refresh(api, renewed)
    assert again.status == 200, await again.text()


async def test_reuse_after_the_grace_period_revokes_even_the_concurrent_winner(
    api: Client, sender: CapturingSender, pool: asyncpg.Pool
) -> None:
    session = await login(api, sender)
    api.session.cookie_jar.clear()
    winner = await refresh(api, session["refreshToken"])
    renewed = (await winner.json())["data"]["refreshToken"]
    await age_rotations(pool, session["user"]["id"])
    assert await reason_of(await refresh(api, session["refreshToken"])) == "reused"
    assert await reason_of(await refresh(api, renewed)) == "revoked"


async def age_rotations(pool: asyncpg.Pool, user_id: str) -> None:
    """Move every rotation of the user's tokens a minute into the past, beyond the reuse grace."""
    await pool.execute(
        "UPDATE refresh_tokens SET rotated_at = rotated_at - interval '1 minute'"
        " WHERE user_id = $1 AND rotated_at IS NOT NULL",
        user_id,
    )
