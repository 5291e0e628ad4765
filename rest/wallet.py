"""/api/wallet: the caller's balance, their ledger transactions, and withdrawals to a verified bank
account.

A withdrawal posts wallet -> payouts in the transaction that records it, so the database refuses
one that the balance cannot cover however many run at once; the gateway payout is requested after
that commit (idempotent on the withdrawal id). A payout that fails or is reversed is undone by a
new transfer payouts -> wallet (never by editing the first), applied once whatever repeats."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from aiohttp import web

from hub.keys import POOL, SETTINGS
from rest import ledger
from rest.api import Body, Routes, Wire, load, load_all, ok
from rest.errors import ApiError
from rest.gateway import Gateway, GatewayError, gateway_for
from rest.gig_search import EpochMs, Uuid
from rest.http import query_int, require_user
from rest.idempotency import PARAMETER, idempotent, key_of

if TYPE_CHECKING:
    from rest.ledger import Conn

log = logging.getLogger("gigwire.wallet")
routes = Routes("wallet")

# status -> the statuses it may move to (forward only; failed and reversed are final).
_FORWARD = {
    "pending": {"processing", "processed", "failed", "reversed"},
    "processing": {"processed", "failed", "reversed"},
    "processed": {"reversed"},
    "failed": set(),
    "reversed": set(),
}
_GATEWAY_STATUS = {
    "queued": "processing",
    "pending": "processing",
    "processing": "processing",
    "processed": "processed",
    "failed": "failed",
    "rejected": "failed",
    "cancelled": "failed",
    "reversed": "reversed",
}


async def settle_withdrawal(
    conn: Conn,
    *,
    payout_id: str | None,
    reference: str | None,
    gateway_status: str,
    reason: str | None = None,
) -> str:
    """Move a withdrawal forward to what the gateway says of its payout (found by payout id, else by
    our reference = the withdrawal id), inside the caller's transaction; a failed or reversed payout
    returns the money to the wallet by a new transfer. Returns the outcome ("unknown", "stale" when
    the state would move backward or not at all, or the new status)."""
    status = _GATEWAY_STATUS.get(gateway_status)
    row = None
    if payout_id:
        row = await conn.fetchrow("SELECT * FROM withdrawals WHERE payout_id = $1 FOR UPDATE", payout_id)
    if row is None and reference:
        try:
            row = await conn.fetchrow(
                "SELECT * FROM withdrawals WHERE id = $1 FOR UPDATE", str(uuid.UUID(reference))
            )
        except ValueError:
            row = None
    if row is None or status is None:
        return "unknown"
    if status not in _FORWARD[row["status"]]:
        return "stale"
    await conn.execute(
        "UPDATE withdrawals SET status = $2, payout_id = COALESCE(payout_id, $3), failure_reason = $4,"
        " updated_at = now() WHERE id = $1",
        row["id"],
        status,
        payout_id,
        reason,
    )
    if status in ("failed", "reversed"):
        currency = row["currency"]
        await ledger.transfer(
            conn,
            debit=ledger.platform_account("payouts", currency),
            credit=ledger.wallet_account(str(row["user_id"]), currency),
            amount=row["amount"],
            currency=currency,
            kind="payout_reversal",
            reference=str(row["id"]),
        )
    return status


@dataclass(frozen=True)
class PayoutOutcome:
    """What a payout request got: the gateway's status ("" when the outcome is unknown), its payout
    id when it answered, and the reason of a failure."""

    gateway_status: str
    payout_id: str | None = None
    reason: str | None = None


async def request_payout(
    gateway: Gateway, *, withdrawal_id: str, fund_account_id: str, amount: int, currency: str
) -> PayoutOutcome:
    """Ask the gateway to pay a withdrawal out (idempotent on the withdrawal id, so asking again
    never pays twice). Never raises GatewayError: a refusal is a "failed" outcome, no definite
    answer (timeout, 5xx, connection lost) an unknown one."""
    try:
        result = await gateway.payout(
            fund_account_id=fund_account_id, amount=amount, currency=currency, reference=withdrawal_id
        )
    except GatewayError as exc:
        log.warning("payout request failed", extra={"withdrawal": withdrawal_id, "definite": exc.definite})
        return PayoutOutcome("failed" if exc.definite else "", reason=str(exc))
    return PayoutOutcome(result.status, payout_id=result.id)


async def record_payout(conn: Conn, withdrawal_id: str, outcome: PayoutOutcome) -> str:
    """Apply a payout request's definite outcome to its withdrawal inside the caller's transaction
    (settle_withdrawal, then remember the payout id); "unknown" for an unknown outcome."""
    if not outcome.gateway_status:
        return "unknown"
    result = await settle_withdrawal(
        conn,
        payout_id=outcome.payout_id,
        reference=withdrawal_id,
        gateway_status=outcome.gateway_status,
        reason=outcome.reason,
    )
    if outcome.payout_id is not None:
        await conn.execute(
            "UPDATE withdrawals SET payout_id = $2 WHERE id = $1 AND payout_id IS NULL",
            withdrawal_id,
            outcome.payout_id,
        )
    return result


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
        {
            "name": "cursor",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**62},
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 100},
        },
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
    " not verified. Requires Idempotency-Key.",
    auth=True,
    body=WithdrawInput,
    response=Withdrawal,
    status=201,
    parameters=({**PARAMETER, "required": True},),
    errors=(404, 409, 422),
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
    idem_key = key_of(request)  # required: `idempotent` answers 400 before run() without one

    async def replay(conn: Conn) -> web.Response | None:
        # A withdrawal made with this key by an earlier attempt that failed after committing it (its
        # idempotency record was then released): answer it as it is now, never make it again.
        row = await conn.fetchrow(
            "SELECT * FROM withdrawals WHERE user_id = $1 AND idempotency_key = $2", claims.user_id, idem_key
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
            row = await conn.fetchrow(
                "INSERT INTO withdrawals (user_id, bank_account_id, amount, currency, idempotency_key)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING *",
                claims.user_id,
                bank_account_id,
                amount,
                currency,
                idem_key,
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
