"""The ledger's own guarantees: short wallets refused with the figures, postings unique per
(kind, reference), transfers immutable, and the audit catching a tampered balance."""

from __future__ import annotations

import asyncpg
import pytest

from domain import ledger
from domain.errors import DomainError
from hub.settings import Settings
from rest.errors import STATUS
from tests.factories import make_user


async def test_charge_wallet_refuses_a_short_wallet_and_posts_once(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    user = await make_user(pool, settings)
    wallet = ledger.wallet_account(user.id, "INR")
    async with pool.acquire() as conn:
        with pytest.raises(DomainError) as short:
            async with conn.transaction():
                await ledger.charge_wallet(
                    conn, user_id=user.id, amount=500, currency="INR", reason="gig_boost", reference="b1"
                )
        assert (short.value.code, STATUS[short.value.code], short.value.details) == (
            "conflict",
            409,
            {"reason": "insufficient_funds", "available": 0, "required": 500},
        )
        async with conn.transaction():  # money in: as a release would bring it
            await ledger.transfer(
                conn, debit=ledger.platform_account("clearing", "INR"), credit=wallet, amount=800,
                currency="INR", kind="test_credit", reference=user.id,
            )  # fmt: skip
            await ledger.charge_wallet(
                conn, user_id=user.id, amount=500, currency="INR", reason="gig_boost", reference="b1"
            )
        with pytest.raises(asyncpg.UniqueViolationError):
            async with conn.transaction():
                await ledger.charge_wallet(
                    conn, user_id=user.id, amount=100, currency="INR", reason="gig_boost", reference="b1"
                )
        with pytest.raises(DomainError):
            await ledger.charge_wallet(
                conn, user_id=user.id, amount=0, currency="INR", reason="x", reference="z"
            )
        assert await ledger.balance(conn, wallet) == 300
        assert await conn.fetchval("SELECT wallet_balance FROM users WHERE id = $1", user.id) == 300
        with pytest.raises(asyncpg.RaiseError):
            await conn.execute("UPDATE ledger_transfers SET amount = 1 WHERE debit_account = $1", wallet)
        assert await ledger.audit(conn) == []
        # The audit notices a balance changed behind the ledger's back (then we put it right).
        async with conn.transaction():
            await conn.execute("UPDATE ledger_accounts SET balance = balance + 1 WHERE id = $1", wallet)
            problems = await ledger.audit(conn)
            assert any(wallet in p for p in problems)
            await conn.execute("UPDATE ledger_accounts SET balance = balance - 1 WHERE id = $1", wallet)
