"""/api/wallet: the caller's balance, their ledger transactions, and withdrawals to a verified bank
account.

A withdrawal posts wallet -> payouts in the transaction that records it, so the database refuses
one that the balance cannot cover however many run at once; the gateway payout is requested after
that commit (idempotent on the withdrawal id) through domain/payouts.py, which also undoes a
payout that fails or is reversed."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from aiohttp import web

from domain import ledger
from domain.gateways import gateway_for
from domain.payouts import record_payout, request_payout
from hub.keys import POOL, SETTINGS
from hub.model import EpochMs, Uuid
from rest.account_rules import require_account
from rest.api import Body, Routes, Wire, int_query, load, load_all, ok
from rest.errors import ApiError
from rest.http import query_int, require_user
from rest.idempotency import PARAMETER, claim_of, idempotent

if TYPE_CHECKING:
    from hub.db import Conn

routes = Routes("wallet")


Money = Annotated[int, msgspec.Meta(ge=0, description="paise")]
Amount = Annotated[int, msgspec.Meta(ge=1, description="paise")]


class Balance(Wire):
    """The caller's wallet: available (withdrawable), in escrow on their orders as doer, lifetime
    earnings, and on its way to a bank."""

    currency: str
    wallet_balance: Money
    pending_balance: Money
    total_earnings: Money
    withdrawing: Money


class WalletTransaction(Wire):
    """One ledger transfer into or out of the caller's wallet."""

    id: Annotated[str, msgspec.Meta(description="the transfer's number (nextCursor pages by it)")]
    kind: str
    direction: Literal["credit", "debit"]
    amount: Amount
    currency: str
    order_id: Uuid | None
    reference: str
    created_at: EpochMs


class WithdrawInput(Body):
    """POST /api/wallet/withdraw."""

    amount: Annotated[int, msgspec.Meta(ge=1, le=10**12, description="paise")]
    bank_account_id: Annotated[
        str, msgspec.Meta(min_length=1, max_length=36, extra_json_schema={"format": "uuid"})
    ]


class Withdrawal(Wire):
    """A withdrawal as the API shows it."""

    id: Uuid
    bank_account_id: Uuid
    amount: Amount
    currency: str
    status: Literal["pending", "processing", "processed", "failed", "reversed"]
    payout_id: str | None
    failure_reason: str | None
    created_at: EpochMs
    updated_at: EpochMs


@routes.get(
    "/api/wallet/balance",
    summary="My wallet: available, in escrow (as doer), lifetime earnings, being withdrawn",
    auth=True,
    response=Balance,
    errors=(404,),
)
async def get_balance(request: web.Request) -> web.Response:
    """Available (withdrawable) balance, money in escrow on my orders as doer, lifetime earnings, and
    money on its way to a bank."""
    claims = require_user(request)
    row = await request.app[POOL].fetchrow(
        "SELECT u.currency, u.wallet_balance, u.pending_balance, u.total_earnings,"
        " (SELECT COALESCE(sum(w.amount), 0) FROM withdrawals w WHERE w.user_id = u.id"
        " AND w.status IN ('pending', 'processing'))::bigint AS withdrawing"
        " FROM users u WHERE u.id = $1",
        claims.user_id,
    )
    if row is None:
        raise ApiError("not_found", "Your account no longer exists.")
    return ok(load(Balance, row))


@routes.get(
    "/api/wallet/transactions",
    summary="My wallet's ledger transfers, newest first (cursor paging)",
    auth=True,
    response=list[WalletTransaction],
    meta={"nextCursor": str | None},
    parameters=(
        int_query("cursor", 1, 2**62),
        int_query("limit", 1, 100),
    ),
    errors=(400,),
)
async def list_transactions(request: web.Request) -> web.Response:
    """My wallet's transfers, newest first; `?cursor=` from the previous page's nextCursor."""
    claims = require_user(request)
    limit = query_int(request, "limit", 20, 1, 100)
    cursor = query_int(request, "cursor", 2**62, 1, 2**62)
    pool = request.app[POOL]
    currency = await pool.fetchval("SELECT currency FROM users WHERE id = $1", claims.user_id) or "INR"
    account = ledger.wallet_account(claims.user_id, currency)
    # t.id, not the text `id` the row shows: transfers sort (and page) by their number.
    rows = await pool.fetch(
        "SELECT t.id::text AS id, t.kind, CASE WHEN t.credit_account = $1 THEN 'credit' ELSE 'debit' END"
        " AS direction, t.amount, t.currency, t.order_id, t.reference, t.created_at FROM ledger_transfers t"
        " WHERE (t.debit_account = $1 OR t.credit_account = $1) AND t.id < $2 ORDER BY t.id DESC LIMIT $3",
        account,
        cursor,
        limit + 1,
    )
    next_cursor = rows[limit - 1]["id"] if len(rows) > limit else None
    return ok(load_all(WalletTransaction, rows[:limit]), nextCursor=next_cursor)


@routes.post(
    "/api/wallet/withdraw",
    summary="Withdraw from my wallet to a verified bank account",
    description="409 when the balance is short (details.reason insufficient_funds) or the account is"
    " not verified. 422 (details.reason profile_incomplete, details.missing) until the profile is"
    " complete; 403 (details.reason phone_unverified) without a verified phone. Requires Idempotency-Key.",
    auth=True,
    body=WithdrawInput,
    response=Withdrawal,
    status=201,
    parameters=({**PARAMETER, "required": True},),
    errors=(403, 404, 409, 422),
)
async def withdraw(request: web.Request, body: WithdrawInput) -> web.Response:
    """Send `amount` of my wallet to one of my verified bank accounts. Idempotency-Key required."""
    claims = require_user(request)
    amount = body.amount
    try:
        bank_account_id = str(uuid.UUID(body.bank_account_id))
    except ValueError:
        raise ApiError("not_found", "No such bank account of yours.") from None
    settings = request.app[SETTINGS]
    pool = request.app[POOL]

    async def replay(conn: Conn) -> web.Response | None:
        # A withdrawal made under this key's record by an earlier attempt that failed after
        # committing it (the record was then released, keeping its id): answer it as it is now,
        # never make it again. A key reused after its record was swept has a new record: a new
        # withdrawal.
        row = await conn.fetchrow(
            "SELECT * FROM withdrawals WHERE idempotency_record = $1", claim_of(request).record
        )
        if row is None:
            return None
        if (str(row["bank_account_id"]), row["amount"]) != (bank_account_id, amount):
            raise ApiError(
                "unprocessable", "This Idempotency-Key was used for a different withdrawal; use a new key."
            )
        return ok(load(Withdrawal, row), status=201)

    async def run() -> web.Response:
        async with pool.acquire() as conn, conn.transaction():
            if (earlier := await replay(conn)) is not None:
                return earlier
            await require_account(conn, claims.user_id, phone=True)
            bank = await conn.fetchrow(
                "SELECT * FROM bank_accounts WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL FOR SHARE",
                bank_account_id,
                claims.user_id,
            )
            if bank is None:
                raise ApiError("not_found", "No such bank account of yours.")
            if bank["status"] != "verified":
                raise ApiError(
                    "conflict",
                    "Verify this bank account first (POST /api/bank-accounts/{id}/verify).",
                    details={"status": bank["status"]},
                )
            currency = await conn.fetchval("SELECT currency FROM users WHERE id = $1", claims.user_id)
            claim = claim_of(request)  # `idempotent` answers 400 before run() without a key
            row = await conn.fetchrow(
                "INSERT INTO withdrawals (user_id, bank_account_id, amount, currency, idempotency_key,"
                " idempotency_record) VALUES ($1, $2, $3, $4, $5, $6)"
                " ON CONFLICT (idempotency_record) DO NOTHING RETURNING *",
                claims.user_id,
                bank_account_id,
                amount,
                currency,
                claim.key,
                claim.record,
            )
            if row is None:  # made by a concurrent request with this key since the lookup above
                earlier = await replay(conn)
                assert earlier is not None
                return earlier
            await ledger.transfer(
                conn,
                debit=ledger.wallet_account(claims.user_id, currency),
                credit=ledger.platform_account("payouts", currency),
                amount=amount,
                currency=currency,
                kind="withdrawal",
                reference=str(row["id"]),
            )
        # The payout is asked for after the commit; an unknown answer (or a crash before asking)
        # leaves the withdrawal pending for the webhook or the payout sweep (workers.timers).
        outcome = await request_payout(
            gateway_for(settings),
            withdrawal_id=str(row["id"]),
            fund_account_id=bank["fund_account_id"],
            amount=amount,
            currency=currency,
        )
        if outcome.gateway_status:
            async with pool.acquire() as conn, conn.transaction():
                await record_payout(conn, str(row["id"]), outcome)
        final = await pool.fetchrow("SELECT * FROM withdrawals WHERE id = $1", row["id"])
        return ok(load(Withdrawal, final), status=201)

    return await idempotent(request, claims.user_id, run, required=True)
