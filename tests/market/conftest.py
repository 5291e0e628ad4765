"""Fixtures of the marketplace tests: a client and a doer with tokens, gig and wallet helpers."""

from __future__ import annotations

import secrets
import time
from typing import Any

import asyncpg
import pytest

from domain import ledger
from hub.settings import Settings
from tests.factories import TestUser, make_user

DAY_MS = 86_400_000


def future_ms(days: float = 7) -> int:
    """Epoch ms `days` from now."""
    return int(time.time() * 1000 + days * DAY_MS)


def gig_body(**overrides: Any) -> dict[str, Any]:
    """A valid POST /api/gigs body."""
    body: dict[str, Any] = {
        "title": "Design a logo for a college fest",
        "description": "A bold logo in two colours, delivered as SVG and PNG.",
        "category": "design",
        "skills": ["photoshop", "illustrator"],
        "budgetMin": 50_000,
        "budgetMax": 150_000,
        "deadline": future_ms(),
    }
    body.update(overrides)
    return body


def marker() -> str:
    """A skill no other test uses, to find exactly this test's gigs in shared search results."""
    return "zz" + secrets.token_hex(5)


async def create_gig(client: Any, user: TestUser, **overrides: Any) -> dict[str, Any]:
    """POST a gig as `user` and return its JSON (asserting 201)."""
    resp = await client.post("/api/gigs", json=gig_body(**overrides), headers=user.headers)
    body = await resp.json()
    assert resp.status == 201, body
    gig: dict[str, Any] = body["data"]
    return gig


async def apply(client: Any, doer: TestUser, gig_id: str, bid: int = 90_000) -> dict[str, Any]:
    """Apply to a gig as `doer` and return the application JSON (asserting 201)."""
    resp = await client.post(
        f"/api/gigs/{gig_id}/applications",
        json={"proposal": "I have done ten of these.", "bidAmount": bid},
        headers=doer.headers,
    )
    body = await resp.json()
    assert resp.status == 201, body
    application: dict[str, Any] = body["data"]
    return application


async def fund_wallet(pool: asyncpg.Pool, user: TestUser, amount: int, currency: str = "INR") -> None:
    """Put `amount` in the user's wallet through the ledger (gateway clearing -> wallet)."""
    async with pool.acquire() as conn, conn.transaction():
        await ledger.transfer(
            conn,
            debit=ledger.platform_account("clearing", currency),
            credit=ledger.wallet_account(user.id, currency),
            amount=amount,
            currency=currency,
            kind="test_topup",
            reference=secrets.token_hex(8),
        )


async def gig_row(pool: asyncpg.Pool, gig_id: str) -> dict[str, Any] | None:
    """The gig's row as a dict (without the tsvector), or None."""
    row = await pool.fetchrow(
        "SELECT status, applications_count, views_count, boosted_until, title, budget_min, budget_max"
        " FROM gigs WHERE id = $1",
        gig_id,
    )
    return dict(row) if row else None


@pytest.fixture
async def owner(pool: asyncpg.Pool, settings: Settings) -> TestUser:
    """A user with the client role (and the doer role, as new users have both)."""
    return await make_user(pool, settings)


@pytest.fixture
async def doer(pool: asyncpg.Pool, settings: Settings) -> TestUser:
    """A user with only the doer role."""
    return await make_user(pool, settings, roles=("doer",))


@pytest.fixture
async def stranger(pool: asyncpg.Pool, settings: Settings) -> TestUser:
    """A signed-in user with no part in the gig under test."""
    return await make_user(pool, settings)
