"""The trust rule (domain/trust.py, README "Reviews and trust") on its own inputs, and its
recomputation where the inputs change in today's flows: logging in (phone verified) over HTTP."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from domain import trust
from domain.trust import Inputs, rule
from rest.otp import OTP_SENDER
from tests.factories import random_phone
from tests.rest.conftest import CapturingSender, skip_resend_gap
from tests.services import Services

NEW = Inputs(
    phone_verified=False,
    email_verified=False,
    id_verified=False,
    completed_orders=0,
    rating=0.0,
    review_count=0,
    disputes_lost=0,
    age_days=0,
)


@pytest.mark.parametrize(
    ("changes", "score", "badges"),
    [
        ({}, 40, []),
        ({"phone_verified": True}, 50, ["phone_verified"]),
        ({"phone_verified": True, "email_verified": True, "id_verified": True}, 75,
         ["phone_verified", "email_verified", "id_verified"]),
        ({"completed_orders": 1}, 42, ["first_gig"]),
        ({"completed_orders": 10}, 60, ["first_gig", "ten_gigs"]),
        ({"completed_orders": 500}, 60, ["first_gig", "ten_gigs"]),  # at most +20
        ({"rating": 0.0, "review_count": 0}, 40, []),  # unrated: no rating term
        ({"rating": 1.0, "review_count": 1}, 30, []),
        ({"rating": 5.0, "review_count": 4}, 50, []),
        ({"rating": 4.5, "review_count": 5}, 48, ["top_rated"]),
        ({"rating": 4.49, "review_count": 5}, 47, []),
        ({"disputes_lost": 1}, 30, []),
        ({"disputes_lost": 9}, 10, []),  # at most -30
        ({"age_days": 29}, 40, []),
        ({"age_days": 60}, 42, []),
        ({"age_days": 3650}, 50, ["veteran"]),  # at most +10
    ],
)  # fmt: skip
def test_rule(changes: dict[str, Any], score: int, badges: list[str]) -> None:
    assert rule(replace(NEW, **changes)) == trust.Trust(score, badges)


def test_rule_clamps_and_awards_trusted() -> None:
    best = Inputs(True, True, True, 50, 5.0, 50, 0, 4000)
    assert rule(best) == trust.Trust(100, [*trust.BADGES])  # every badge, in BADGES order
    assert "trusted" not in rule(replace(best, disputes_lost=1)).badges
    assert rule(replace(best, disputes_lost=1)).score == 100  # 115 - 10, clamped
    worst = Inputs(False, False, False, 0, 1.0, 3, 50, 0)
    assert rule(worst) == trust.Trust(0, [])


async def test_login_recomputes_trust(
    aiohttp_client: Any, make_app: Any, pool: asyncpg.Pool, services: Services
) -> None:
    """A user created by phone login has a verified phone: 50 and the phone_verified badge, answered
    in the login's user and stored; an existing user's changed inputs count at the next login."""
    sender = CapturingSender()
    app = make_app(otp_sends_per_ip=1_000_000)
    app[OTP_SENDER] = sender
    api: TestClient[Any, Any] = await aiohttp_client(app)
    phone = random_phone()

    async def login() -> dict[str, Any]:
        await skip_resend_gap(services, phone)
        r = await api.post("/api/auth/send-otp", json={"phone": phone})
        assert r.status == 200, await r.text()
        r = await api.post("/api/auth/verify-otp", json={"phone": phone, "otp": sender.last(phone)})
        assert r.status == 200, await r.text()
        user: dict[str, Any] = (await r.json())["data"]["user"]
        return user

    user = await login()
    assert (user["trustScore"], user["badges"]) == (50, ["phone_verified"])
    row = await pool.fetchrow("SELECT trust_score, badges FROM users WHERE phone = $1", phone)
    assert (row["trust_score"], row["badges"]) == (50, ["phone_verified"])

    await pool.execute(
        "UPDATE users SET email_verified = true, created_at = now() - interval '400 days' WHERE phone = $1",
        phone,
    )
    user = await login()
    assert (user["trustScore"], user["badges"]) == (70, ["phone_verified", "email_verified", "veteran"])
    assert await pool.fetchval("SELECT trust_score FROM users WHERE phone = $1", phone) == 70


async def test_changing_a_verified_email_takes_its_points_away_at_once(
    client: TestClient[Any, Any], pool: asyncpg.Pool, settings: Any
) -> None:
    """PATCH /api/users/me with a new email unverifies it; the trust score and badges follow in the
    same transaction, in the answer and for everyone reading the public profile."""
    from tests.factories import make_user

    user = await make_user(pool, settings, email_verified=True)
    async with pool.acquire() as conn:
        await trust.recompute(conn, user.id)
    r = await client.get(f"/api/users/{user.id}", headers=user.headers)
    before = (await r.json())["data"]
    assert "email_verified" in before["badges"]
    r = await client.patch("/api/users/me", json={"email": "new.address@example.edu"}, headers=user.headers)
    me = (await r.json())["data"]
    assert r.status == 200 and me["emailVerified"] is False
    assert "email_verified" not in me["badges"] and me["trustScore"] < before["trustScore"]
    r = await client.get(f"/api/users/{user.id}", headers=user.headers)
    assert (await r.json())["data"]["trustScore"] == me["trustScore"]
    # The same email again (any case) is no change: nothing is lost.
    r = await client.patch("/api/users/me", json={"email": "New.Address@example.edu"}, headers=user.headers)
    assert (await r.json())["data"]["trustScore"] == me["trustScore"]
