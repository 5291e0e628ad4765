"""/api/wallet: the caller's balance, their ledger transactions, and withdrawals to a verified bank
account.

A withdrawal posts wallet -> payouts in the transaction that records it, so the database refuses
one that the balance cannot cover however many run at once; the gateway payout is requested after
that commit (idempotent on the withdrawal id) through domain/payouts.py, which also undoes a
payout that fails or is reversed."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from domain import ledger
from domain.gateways import gateway_for
from domain.payouts import record_payout, request_payout
from hub.clock import epoch_ms
from hub.keys import POOL, SETTINGS
from rest.errors import ApiError
from rest.http import Fields, ok, query_int, read_json, require_user
from rest.idempotency import PARAMETER, idempotent, key_of
from rest.openapi import BEARER, envelope, errors, json_body, json_response

if TYPE_CHECKING:
    from hub.db import Conn

routes = web.RouteTableDef()


@routes.get("/api/wallet/balance")
async def get_balance(request: web.Request) -> web.Response:
    """Available (withdrawable) balance, money in escrow on my orders as doer, lifetime earnings, and
    money on its way to a bank."""
    claims = require_user(request)
    pool = request.app[POOL]
    user = await pool.fetchrow(
        "SELECT wallet_balance, pending_balance, total_earnings, currency FROM users WHERE id = $1",
        claims.user_id,
    )
    if user is None:
        raise ApiError("not_found", "Your account no longer exists.")
    withdrawing = await pool.fetchval(
        "SELECT COALESCE(sum(amount), 0) FROM withdrawals WHERE user_id = $1"
        " AND status IN ('pending', 'processing')",
        claims.user_id,
    )
    return ok(
        {
            "currency": user["currency"],
            "walletBalance": user["wallet_balance"],
            "pendingBalance": user["pending_balance"],
            "totalEarnings": user["total_earnings"],
            "withdrawing": int(withdrawing),
        }
    )


@routes.get("/api/wallet/transactions")
async def list_transactions(request: web.Request) -> web.Response:
    """My wallet's transfers, newest first; `?cursor=` from the previous page's nextCursor."""
    claims = require_user(request)
    limit = query_int(request, "limit", 20, 1, 100)
    cursor = query_int(request, "cursor", 2**62, 1, 2**62)
    pool = request.app[POOL]
    currency = await pool.fetchval("SELECT currency FROM users WHERE id = $1", claims.user_id) or "INR"
    account = ledger.wallet_account(claims.user_id, currency)
    rows = await pool.fetch(
        "SELECT * FROM ledger_transfers WHERE (debit_account = $1 OR credit_account = $1) AND id < $2"
        " ORDER BY id DESC LIMIT $3",
        account,
        cursor,
        limit + 1,
    )
    items = [
        {
            "id": str(r["id"]),
            "kind": r["kind"],
            "direction": "credit" if r["credit_account"] == account else "debit",
            "amount": r["amount"],
            "currency": r["currency"],
            "orderId": str(r["order_id"]) if r["order_id"] else None,
            "reference": r["reference"],
            "createdAt": epoch_ms(r["created_at"]),
        }
        for r in rows[:limit]
    ]
    next_cursor = str(rows[limit - 1]["id"]) if len(rows) > limit else None
    return ok(items, nextCursor=next_cursor)


@routes.post("/api/wallet/withdraw")
async def withdraw(request: web.Request) -> web.Response:
    """Send `amount` of my wallet to one of my verified bank accounts. Idempotency-Key required."""
    claims = require_user(request)
    f = Fields(await read_json(request))
    f.unknown(["amount", "bankAccountId"])
    amount = f.integer("amount", low=1, high=10**12)
    bank_account_id = f.text("bankAccountId", max_len=36)
    f.check()
    try:
        bank_account_id = str(uuid.UUID(bank_account_id))
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
        return ok(withdrawal_json(row), status=201)

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
        return ok(withdrawal_json(final), status=201)

    return await idempotent(request, claims.user_id, run, required=True)


def withdrawal_json(row: Any) -> dict[str, Any]:
    """A withdrawal as the API shows it."""
    return {
        "id": str(row["id"]),
        "bankAccountId": str(row["bank_account_id"]),
        "amount": row["amount"],
        "currency": row["currency"],
        "status": row["status"],
        "payoutId": row["payout_id"],
        "failureReason": row["failure_reason"],
        "createdAt": epoch_ms(row["created_at"]),
        "updatedAt": epoch_ms(row["updated_at"]),
    }


_MONEY = {"type": "integer", "minimum": 0}
WITHDRAWAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "bankAccountId", "amount", "currency", "status", "createdAt", "updatedAt"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "bankAccountId": {"type": "string", "format": "uuid"},
        "amount": {"type": "integer", "minimum": 1},
        "currency": {"type": "string"},
        "status": {"enum": ["pending", "processing", "processed", "failed", "reversed"]},
        "payoutId": {"type": ["string", "null"]},
        "failureReason": {"type": ["string", "null"]},
        "createdAt": {"type": "integer"},
        "updatedAt": {"type": "integer"},
    },
}

OPENAPI: dict[str, dict[str, dict[str, Any]]] = {
    "/api/wallet/balance": {
        "get": {
            "summary": "My wallet: available, in escrow (as doer), lifetime earnings, being withdrawn",
            "tags": ["wallet"],
            "security": BEARER,
            "responses": {
                "200": json_response(
                    envelope(
                        {
                            "type": "object",
                            "required": ["currency", "walletBalance", "pendingBalance", "totalEarnings"],
                            "properties": {
                                "currency": {"type": "string"},
                                "walletBalance": _MONEY,
                                "pendingBalance": _MONEY,
                                "totalEarnings": _MONEY,
                                "withdrawing": _MONEY,
                            },
                        }
                    )
                ),
                **errors(401, 404),
            },
        }
    },
    "/api/wallet/transactions": {
        "get": {
            "summary": "My wallet's ledger transfers, newest first (cursor paging)",
            "tags": ["wallet"],
            "security": BEARER,
            "parameters": [
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
            ],
            "responses": {
                "200": json_response(
                    envelope(
                        {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["id", "kind", "direction", "amount", "currency", "createdAt"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "kind": {"type": "string"},
                                    "direction": {"enum": ["credit", "debit"]},
                                    "amount": {"type": "integer", "minimum": 1},
                                    "currency": {"type": "string"},
                                    "orderId": {"type": ["string", "null"]},
                                    "reference": {"type": "string"},
                                    "createdAt": {"type": "integer"},
                                },
                            },
                        },
                        {"nextCursor": {"type": ["string", "null"]}},
                    )
                ),
                **errors(400, 401),
            },
        }
    },
    "/api/wallet/withdraw": {
        "post": {
            "summary": "Withdraw from my wallet to a verified bank account",
            "description": "409 when the balance is short (details.reason insufficient_funds) or the account"
            " is not verified. Requires Idempotency-Key.",
            "tags": ["wallet"],
            "security": BEARER,
            "parameters": [{**PARAMETER, "required": True}],
            "requestBody": json_body(
                {
                    "type": "object",
                    "required": ["amount", "bankAccountId"],
                    "additionalProperties": False,
                    "properties": {
                        "amount": {"type": "integer", "minimum": 1, "maximum": 10**12},
                        "bankAccountId": {"type": "string", "format": "uuid"},
                    },
                }
            ),
            "responses": {
                "201": json_response(envelope(WITHDRAWAL_SCHEMA)),
                **errors(400, 401, 404, 409, 422),
            },
        }
    },
}
