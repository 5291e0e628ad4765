"""A login never deletes the user's old refresh tokens: a rotated token of a family still in use,
long expired, must stay known so that its reuse revokes the family (housekeeping deletes tokens
only with their whole family, once its newest token has been dead for a day)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from rest.refresh import token_hash
from tests.factories import random_phone
from tests.rest.conftest import CapturingSender, login, skip_resend_gap
from tests.rest.test_refresh import reason_of, refresh
from tests.services import Services

Client = TestClient[Any, Any]


async def test_a_new_login_keeps_an_old_rotated_token_so_its_reuse_revokes_the_family(
    api: Client, sender: CapturingSender, pool: asyncpg.Pool, services: Services
) -> None:
    phone = random_phone()
    first = await login(api, sender, phone)
    api.session.cookie_jar.clear()
    resp = await refresh(api, first["refreshToken"])
    assert resp.status == 200, await resp.text()
    newest = (await resp.json())["data"]["refreshToken"]
    # The first token expired two days ago (rotated before that, beyond the reuse grace); the
    # family's newest token is still valid.
    await pool.execute(
        "UPDATE refresh_tokens SET expires_at = now() - interval '2 days',"
        " rotated_at = now() - interval '3 days' WHERE token_hash = $1",
        token_hash(first["refreshToken"]),
    )

    await skip_resend_gap(services, phone)
    other = await login(api, sender, phone)  # another login of the same user, e.g. another phone
    api.session.cookie_jar.clear()
    assert other["user"]["id"] == first["user"]["id"]
    kept = await pool.fetchval(
        "SELECT count(*) FROM refresh_tokens WHERE token_hash = $1", token_hash(first["refreshToken"])
    )
    assert kept == 1

    assert await reason_of(await refresh(api, first["refreshToken"])) == "reused"
    assert await reason_of(await refresh(api, newest)) == "revoked"
    # The other login is another family: untouched.
    resp = await refresh(api, other["refreshToken"])
    assert resp.status == 200, await resp.text()
