"""`demo-seed`: two complete users and a funded order between them, through the ledger; idempotent;
refused (changing nothing) outside dev mode or without the sandbox gateway."""

from __future__ import annotations

import asyncpg
import pytest

from domain import ledger
from hub.settings import Settings
from rest.demo_seed import AMOUNT, DemoSeedError, seed_demo
from tests.factories import random_phone


async def _counts(pool: asyncpg.Pool, phones: tuple[str, str]) -> tuple[int, ...]:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM users WHERE phone = ANY($1)) AS users,"
        " (SELECT count(*) FROM gigs g JOIN users u ON u.id = g.client_id WHERE u.phone = ANY($1)) AS gigs,"
        " (SELECT count(*) FROM orders o JOIN users u ON u.id = o.client_id WHERE u.phone = ANY($1)) AS o,"
        " (SELECT count(*) FROM ledger_transfers) AS transfers",
        list(phones),
    )
    assert row is not None
    return tuple(row.values())


async def test_seed_makes_a_funded_order_once(pool: asyncpg.Pool, settings: Settings) -> None:
    phones = (random_phone(), random_phone())
    first = await seed_demo(pool, settings, phones)
    assert first.created
    order = await pool.fetchrow("SELECT * FROM orders WHERE id = $1", first.order_id)
    assert order is not None
    assert (str(order["client_id"]), str(order["doer_id"])) == (first.client_id, first.doer_id)
    assert (order["status"], order["escrow_state"], order["amount"]) == ("in_progress", "funded", AMOUNT)
    assert order["payment_gateway_order_id"] and order["payment_gateway_payment_id"]
    # The money went through the ledger: clearing -> escrow, once.
    assert await ledger.balance(pool, ledger.escrow_account(first.order_id)) == AMOUNT
    funds = await pool.fetch(
        "SELECT debit_account, amount FROM ledger_transfers WHERE order_id = $1 AND kind = 'fund'",
        first.order_id,
    )
    assert [(r["debit_account"], r["amount"]) for r in funds] == [
        (f"platform:clearing:{settings.currency}", AMOUNT)
    ]
    problems = [p for p in await ledger.audit(pool) if first.order_id in p or first.doer_id in p]
    assert problems == []
    # Complete profiles, verified phones, the doer's application accepted.
    users = await pool.fetch(
        "SELECT phone, name, email, university, course, year, graduation_year, phone_verified"
        " FROM users WHERE phone = ANY($1)",
        list(phones),
    )
    assert len(users) == 2
    for u in users:
        assert all(v is not None for v in u.values()), dict(u)
        assert u["phone_verified"] is True
    app = await pool.fetchrow(
        "SELECT status, doer_id::text AS doer FROM applications WHERE id = $1", first.application_id
    )
    assert app is not None
    assert (app["status"], app["doer"]) == ("accepted", first.doer_id)

    before = await _counts(pool, phones)
    again = await seed_demo(pool, settings, phones)
    assert not again.created
    assert again == first.__class__(**{**first.__dict__, "created": False})
    assert await _counts(pool, phones) == before


async def test_seed_completes_a_user_who_logged_in_first(pool: asyncpg.Pool, settings: Settings) -> None:
    phones = (random_phone(), random_phone())
    existing = await pool.fetchval("INSERT INTO users (phone) VALUES ($1) RETURNING id::text", phones[0])
    seeded = await seed_demo(pool, settings, phones)
    assert seeded.client_id == existing
    row = await pool.fetchrow("SELECT name, email, university FROM users WHERE id = $1", existing)
    assert row is not None
    assert all(v is not None for v in row.values())


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"env": "production"}, "dev mode only"),
        ({"payment_gateway": "razorpay"}, "sandbox gateway"),
    ],
)
async def test_seed_refused_changes_nothing(
    pool: asyncpg.Pool, settings: Settings, changes: dict[str, str], says: str
) -> None:
    phones = (random_phone(), random_phone())
    before = await _counts(pool, phones)
    with pytest.raises(DemoSeedError, match=says):
        await seed_demo(pool, settings.with_(**changes), phones)
    assert await _counts(pool, phones) == before
