"""/api/bank-accounts: where withdrawals go.

Adding an account registers it with the gateway (contact + fund account) and keeps only the last
four digits and a keyed hash of the number (to refuse the same account twice): the full number is
never stored nor returned. Verify runs a penny-drop validation through the gateway; only verified
accounts receive withdrawals. The user's primary account (bankAccountId) is kept by
rest/bank_primary.py in the transaction of each verification and removal."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import TYPE_CHECKING, Annotated, Literal

import asyncpg
import msgspec
from aiohttp import web

from domain.gateway import BankDetails, GatewayError
from domain.gateways import gateway_for
from hub.keys import POOL, SETTINGS
from hub.model import EpochMs, Uuid
from rest.api import Body, Deleted, FieldErrors, Routes, Wire, has_control, load, load_all, ok
from rest.bank_primary import account_removed, account_verified
from rest.errors import ApiError
from rest.http import path_uuid, require_user
from rest.idempotency import PARAMETER, idempotent

if TYPE_CHECKING:
    from hub.db import Conn

routes = Routes("wallet")

# Every column, and the masked number the API shows instead of the full one (never stored).
_ROW = "*, 'XXXXXX' || last4 AS account_number_masked"


class BankAccountInput(Body):
    """POST /api/bank-accounts."""

    holder_name: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
    ifsc: Annotated[str, msgspec.Meta(pattern="^[A-Z]{4}0[A-Z0-9]{6}$")]
    account_number: Annotated[str, msgspec.Meta(pattern="^[0-9]{9,18}$")]

    def __post_init__(self) -> None:
        if has_control(self.holder_name):
            raise FieldErrors({"holderName": "must not contain control characters"})


class BankAccount(Wire):
    """A bank account as the API shows it: never the full number."""

    id: Uuid
    holder_name: str
    ifsc: str
    last4: Annotated[str, msgspec.Meta(pattern="^[0-9]{4}$")]
    account_number_masked: str
    status: Literal["unverified", "verifying", "verified", "failed"]
    created_at: EpochMs


async def settle_validation(
    conn: Conn, *, fund_account_id: str, validation_id: str, active: bool | None
) -> str:
    """Record a penny-drop result for the account with this fund account id (forward only: a verified
    or failed account is not changed again); a newly verified account becomes its user's primary
    when they have none (rest/bank_primary.py). Returns the new status, or "unknown"/"stale"."""
    if active is None:
        return "stale"
    status = "verified" if active else "failed"
    done = await conn.fetchrow(
        "UPDATE bank_accounts SET status = $2, validation_id = $3 WHERE fund_account_id = $1"
        " AND status IN ('unverified', 'verifying') RETURNING id, user_id",
        fund_account_id,
        status,
        validation_id,
    )
    if done is None:
        return "stale"
    if active:
        await account_verified(conn, done["id"], done["user_id"])
    return status


@routes.post(
    "/api/bank-accounts",
    summary="Add a bank account (starts unverified; the number is never returned in full)",
    auth=True,
    body=BankAccountInput,
    response=BankAccount,
    status=201,
    parameters=(PARAMETER,),
    errors=(409, 422, 502),
)
async def add_account(request: web.Request, body: BankAccountInput) -> web.Response:
    """Add a bank account {holderName, ifsc, accountNumber}; it starts unverified."""
    claims = require_user(request)
    holder, ifsc, number = body.holder_name, body.ifsc, body.account_number
    settings = request.app[SETTINGS]
    digest = hmac.new(settings.jwt_secret.encode(), f"{claims.user_id}:{number}".encode(), hashlib.sha256)

    async def run() -> web.Response:
        pool = request.app[POOL]
        exists = await pool.fetchval(
            "SELECT 1 FROM bank_accounts WHERE user_id = $1 AND number_hash = $2 AND deleted_at IS NULL",
            claims.user_id,
            digest.hexdigest(),
        )
        if exists:
            raise ApiError("conflict", "You have already added this bank account.")
        account_id = uuid.uuid4()
        try:
            fund_account_id = await gateway_for(settings).create_fund_account(
                bank=BankDetails(holder, ifsc, number), reference=str(account_id)
            )
        except GatewayError as exc:
            raise ApiError("bad_gateway", f"The payment gateway refused the account ({exc}).") from None
        try:
            row = await pool.fetchrow(
                "INSERT INTO bank_accounts (id, user_id, holder_name, ifsc, last4, number_hash,"
                f" fund_account_id) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_ROW}",
                account_id,
                claims.user_id,
                holder,
                ifsc,
                number[-4:],
                digest.hexdigest(),
                fund_account_id,
            )
        except asyncpg.UniqueViolationError:
            raise ApiError("conflict", "You have already added this bank account.") from None
        return ok(load(BankAccount, row), status=201)

    return await idempotent(request, claims.user_id, run)


@routes.get("/api/bank-accounts", summary="My bank accounts", auth=True, response=list[BankAccount])
async def list_accounts(request: web.Request) -> web.Response:
    """My bank accounts, oldest first."""
    claims = require_user(request)
    rows = await request.app[POOL].fetch(
        f"SELECT {_ROW} FROM bank_accounts WHERE user_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
        claims.user_id,
    )
    return ok(load_all(BankAccount, rows))


@routes.delete(
    "/api/bank-accounts/{id}",
    summary="Remove a bank account of mine",
    auth=True,
    response=Deleted,
    parameters=(PARAMETER,),
    errors=(400, 404, 409, 422),
)
async def delete_account(request: web.Request) -> web.Response:
    """Remove one of my bank accounts (409 while a withdrawal to it is under way)."""
    claims = require_user(request)
    account_id = path_uuid(request)

    async def run() -> web.Response:
        async with request.app[POOL].acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM bank_accounts WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL"
                " FOR UPDATE",
                account_id,
                claims.user_id,
            )
            if row is None:
                raise ApiError("not_found", "No such bank account of yours.")
            busy = await conn.fetchval(
                "SELECT 1 FROM withdrawals WHERE bank_account_id = $1"
                " AND status IN ('pending', 'processing')",
                account_id,
            )
            if busy:
                raise ApiError("conflict", "A withdrawal to this account is under way; remove it afterwards.")
            await conn.execute("UPDATE bank_accounts SET deleted_at = now() WHERE id = $1", account_id)
            await account_removed(conn, account_id, claims.user_id)
        return ok(Deleted(id=account_id))

    return await idempotent(request, claims.user_id, run)


@routes.post(
    "/api/bank-accounts/{id}/verify",
    summary="Verify a bank account of mine by a penny drop through the gateway",
    auth=True,
    response=BankAccount,
    parameters=(PARAMETER,),
    errors=(400, 404, 409, 422, 502),
)
async def verify_account(request: web.Request) -> web.Response:
    """Penny-drop one of my bank accounts through the gateway; answers the account with its new status
    (verified, failed, or verifying while the gateway has not answered)."""
    claims = require_user(request)
    account_id = path_uuid(request)
    pool = request.app[POOL]

    async def run() -> web.Response:
        row = await pool.fetchrow(
            f"SELECT {_ROW} FROM bank_accounts WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL",
            account_id,
            claims.user_id,
        )
        if row is None:
            raise ApiError("not_found", "No such bank account of yours.")
        if row["status"] in ("verified", "failed"):
            return ok(load(BankAccount, row))
        try:
            result = await gateway_for(request.app[SETTINGS]).validate_account(
                fund_account_id=row["fund_account_id"], reference=account_id
            )
        except GatewayError as exc:
            raise ApiError(
                "bad_gateway", f"The payment gateway failed the validation ({exc}); retry."
            ) from None
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE bank_accounts SET status = 'verifying', validation_id = $2 WHERE id = $1"
                " AND status = 'unverified'",
                account_id,
                result.id,
            )
            await settle_validation(
                conn,
                fund_account_id=row["fund_account_id"],
                validation_id=result.id,
                active=result.account_active,
            )
            fresh = await conn.fetchrow(f"SELECT {_ROW} FROM bank_accounts WHERE id = $1", account_id)
        return ok(load(BankAccount, fresh))

    return await idempotent(request, claims.user_id, run)
