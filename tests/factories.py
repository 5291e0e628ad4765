"""Arranging rows directly in the database for tests: users with tokens, a gig, an order."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import asyncpg

from hub.settings import Settings
from hub.tokens import TokenCodec


@dataclass(frozen=True)
class TestUser:
    __test__ = False  # a factory product, not a test class for pytest to collect

    id: str
    phone: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def random_phone() -> str:
    """A fresh Indian mobile number in E.164 form."""
    return "+919" + "".join(secrets.choice("0123456789") for _ in range(9))


async def make_user(
    pool: asyncpg.Pool, settings: Settings, roles: tuple[str, ...] = ("doer", "client"), **fields: Any
) -> TestUser:
    """Insert a user (complete profile unless overridden) and issue an access token for it."""
    phone = fields.pop("phone", None) or random_phone()
    values = {
        "name": "Test User",
        "email": f"u{secrets.token_hex(6)}@example.edu",
        "university": "Test University",
        "course": "B.Tech",
        "year": 2,
        "graduation_year": 2028,
        "phone_verified": True,
        **fields,
    }
    cols = ", ".join(["phone", "roles", *values])
    marks = ", ".join(f"${i}" for i in range(1, len(values) + 3))
    user_id = await pool.fetchval(
        f"INSERT INTO users ({cols}) VALUES ({marks}) RETURNING id::text",
        phone,
        list(roles),
        *values.values(),
    )
    return TestUser(str(user_id), phone, TokenCodec(settings).issue(str(user_id), roles))


async def make_order(
    pool: asyncpg.Pool,
    client: TestUser,
    doer: TestUser,
    amount: int = 100_000,
    fee_bps: int = 1000,
    status: str = "in_progress",
    escrow_state: str = "funded",
) -> str:
    """Insert a gig, an accepted application and an order between `client` and `doer`; return the
    order id. Touches no ledger: for tests of chat and events, not of money."""
    async with pool.acquire() as conn, conn.transaction():
        gig_id, app_id = await _gig_and_application(conn, client, doer, amount)
        fee = amount * fee_bps // 10_000
        order_id = await conn.fetchval(
            "INSERT INTO orders (gig_id, application_id, client_id, doer_id, amount, platform_fee,"
            " doer_payout, status, escrow_state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            " RETURNING id::text",
            gig_id,
            app_id,
            client.id,
            doer.id,
            amount,
            fee,
            amount - fee,
            status,
            escrow_state,
        )
    return str(order_id)


async def _gig_and_application(
    conn: asyncpg.Connection, client: TestUser, doer: TestUser, amount: int
) -> tuple[str, str]:
    """An in-progress gig of `client` and `doer`'s accepted application to it, by SQL."""
    gig_id = await conn.fetchval(
        "INSERT INTO gigs (client_id, title, description, category, skills, budget_min, budget_max,"
        " deadline, status) VALUES ($1, 'Logo design', 'A logo', 'design', '{photoshop}', $2, $2,"
        " now() + interval '7 days', 'in_progress') RETURNING id::text",
        client.id,
        amount,
    )
    app_id = await conn.fetchval(
        "INSERT INTO applications (gig_id, doer_id, proposal, bid_amount, status)"
        " VALUES ($1, $2, 'I can do it', $3, 'accepted') RETURNING id::text",
        gig_id,
        doer.id,
        amount,
    )
    return str(gig_id), str(app_id)


async def open_test_order(pool: asyncpg.Pool, client: TestUser, doer: TestUser, amount: int = 100_000) -> str:
    """A gig and an accepted application by SQL, then an order opened by domain.orders.open_order (status
    pending_payment, with its escrow account and ORDER_UPDATE event); its id."""
    from domain.orders import open_order

    async with pool.acquire() as conn, conn.transaction():
        gig_id, app_id = await _gig_and_application(conn, client, doer, amount)
        order = await open_order(
            conn,
            gig_id=gig_id,
            application_id=app_id,
            client_id=client.id,
            doer_id=doer.id,
            amount=amount,
            currency="INR",
            actor_id=client.id,
            fee_bps=1000,
        )
    return order.id
