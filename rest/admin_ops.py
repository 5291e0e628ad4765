"""/api/admin/payouts and /api/admin/push-dead-letters: the money and pushes that need an operator.

Payouts: `pending` withdrawals are those without a definite answer from the gateway (the timers ask
again every PAYOUT_RETRY_AFTER_S); an admin retries one at once (the same idempotent request on the
withdrawal id, so never paid twice). `failed` and `reversed` ones are final: their money is back in
the user's wallet (domain/payouts.py) and the user withdraws again; they are listed, not retried.

Push dead letters: pushes that ran out of tries (PUSH_MAX_ATTEMPTS, workers/push.py); replaying one
queues a new push job to the same devices (attempts from zero) and marks the letter replayed, once."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from aiohttp import web

from domain import audit
from domain.gateway import GatewayError
from domain.gateways import gateway_for
from domain.notify import PUSH_CHANNEL
from domain.payouts import record_payout, request_payout
from hub.keys import POOL, SETTINGS
from hub.model import EpochMs, Uuid
from rest.admin_common import OptionalReason, require_admin
from rest.api import Routes, Wire, int_query, load, load_all, ok
from rest.errors import ApiError
from rest.http import path_uuid, query_choice, query_int

routes = Routes("admin")

_PAGE = int_query("page", 1, 10**6)
_LIMIT = int_query("limit", 1, 200)


class AdminWithdrawal(Wire):
    """A withdrawal as admins see it."""

    id: Uuid
    user_id: Uuid
    bank_account_id: Uuid
    amount: Annotated[int, msgspec.Meta(ge=1, description="paise")]
    currency: str
    status: Literal["pending", "processing", "processed", "failed", "reversed"]
    payout_id: str | None
    failure_reason: str | None
    created_at: EpochMs
    updated_at: EpochMs


_PAYOUT_FILTERS = {
    "failed": "status IN ('failed', 'reversed')",
    "pending": "status = 'pending'",
    "processing": "status = 'processing'",
}


@routes.get(
    "/api/admin/payouts",
    summary="Admin: withdrawals whose payout failed (default), or still pending or processing",
    description="status=failed (default): failed or reversed payouts, their money back in the wallet;"
    " pending: no definite answer from the gateway yet (retry them); processing. Oldest change first.",
    auth=True,
    response=list[AdminWithdrawal],
    meta={"page": int, "limit": int, "total": int},
    parameters=(
        {"name": "status", "in": "query", "required": False, "schema": {"enum": list(_PAYOUT_FILTERS)}},
        _PAGE,
        _LIMIT,
    ),
    errors=(400, 401, 403),
)
async def list_payouts(request: web.Request) -> web.Response:
    """Withdrawals in one state, oldest change first."""
    require_admin(request)
    status = query_choice(request, "status", _PAYOUT_FILTERS, "failed")
    page = query_int(request, "page", 1, 1, 10**6)
    limit = query_int(request, "limit", 50, 1, 200)
    where = _PAYOUT_FILTERS[status]
    pool = request.app[POOL]
    rows = await pool.fetch(
        f"SELECT * FROM withdrawals WHERE {where} ORDER BY updated_at, id LIMIT $1 OFFSET $2",
        limit,
        (page - 1) * limit,
    )
    total = await pool.fetchval(f"SELECT count(*) FROM withdrawals WHERE {where}")
    return ok(load_all(AdminWithdrawal, rows), page=page, limit=limit, total=total)


@routes.post(
    "/api/admin/payouts/{id}/retry",
    summary="Admin: ask the gateway again now for a pending withdrawal's payout",
    description="Only a pending withdrawal (409 with details.status otherwise: a failed one's money is"
    " back in the wallet). Idempotent at the gateway on the withdrawal id. meta.outcome: the new"
    " status, or unknown (still no definite answer).",
    auth=True,
    body=OptionalReason,
    response=AdminWithdrawal,
    meta={"outcome": str},
    errors=(400, 401, 403, 404, 409, 503),
)
async def retry_payout(request: web.Request, body: OptionalReason) -> web.Response:
    """Retry one pending payout now."""
    claims = require_admin(request)
    withdrawal_id = path_uuid(request)
    try:
        gateway = gateway_for(request.app[SETTINGS])
    except GatewayError as exc:
        raise ApiError("unavailable", f"No payment gateway to ask ({exc}).") from None
    async with request.app[POOL].acquire() as conn, conn.transaction():
        try:
            row = await conn.fetchrow(
                "SELECT w.*, b.fund_account_id FROM withdrawals w"
                " JOIN bank_accounts b ON b.id = w.bank_account_id"
                " WHERE w.id = $1 FOR UPDATE OF w NOWAIT",
                withdrawal_id,
            )
        except asyncpg.LockNotAvailableError:
            raise ApiError(
                "conflict", "This payout is being asked for right now; look again shortly."
            ) from None
        if row is None:
            raise ApiError("not_found", f"No withdrawal {withdrawal_id}.")
        if row["status"] != "pending":
            raise ApiError(
                "conflict", f"A withdrawal in status {row['status']} is not retried.",
                details={"status": row["status"]},
            )  # fmt: skip
        outcome = await request_payout(
            gateway, withdrawal_id=withdrawal_id, fund_account_id=row["fund_account_id"],
            amount=row["amount"], currency=row["currency"],
        )  # fmt: skip
        result = await record_payout(conn, withdrawal_id, outcome)
        if result == "unknown":
            await conn.execute("UPDATE withdrawals SET updated_at = now() WHERE id = $1", withdrawal_id)
        final = await conn.fetchrow("SELECT * FROM withdrawals WHERE id = $1", withdrawal_id)
        assert final is not None
        await audit.record(
            conn, actor_id=claims.user_id, action="payout.retry", target_type="withdrawal",
            target_id=withdrawal_id, before={"status": "pending"},
            after={"status": final["status"], "outcome": result}, reason=body.reason,
        )  # fmt: skip
    return ok(load(AdminWithdrawal, final), outcome=result)


class DeadLetter(Wire):
    """A push that ran out of tries."""

    id: Annotated[int, msgspec.Meta(ge=1)]
    job_id: int
    user_id: Uuid
    type: str
    title: str
    body: str
    data: dict[str, Any]
    tokens: Annotated[list[str], msgspec.Meta(description="the devices it never reached")]
    attempts: int
    error: str
    created_at: EpochMs
    failed_at: EpochMs
    replayed_at: EpochMs | None
    replay_job_id: Annotated[int | None, msgspec.Meta(description="the push job the replay queued")]


@routes.get(
    "/api/admin/push-dead-letters",
    summary="Admin: pushes that ran out of tries",
    description="replayed=false (default) lists those not replayed yet; true those replayed. Newest first.",
    auth=True,
    response=list[DeadLetter],
    meta={"page": int, "limit": int, "total": int},
    parameters=(
        {"name": "replayed", "in": "query", "required": False, "schema": {"enum": ["true", "false"]}},
        _PAGE,
        _LIMIT,
    ),
    errors=(400, 401, 403),
)
async def list_dead_letters(request: web.Request) -> web.Response:
    """Dead letters, newest first."""
    require_admin(request)
    replayed = request.query.get("replayed") or "false"
    if replayed not in ("true", "false"):
        raise ApiError("bad_request", "Query parameter replayed must be true or false.")
    where = "replayed_at IS NOT NULL" if replayed == "true" else "replayed_at IS NULL"
    page = query_int(request, "page", 1, 1, 10**6)
    limit = query_int(request, "limit", 50, 1, 200)
    pool = request.app[POOL]
    rows = await pool.fetch(
        f"SELECT * FROM push_dead_letters WHERE {where} ORDER BY failed_at DESC, id DESC LIMIT $1 OFFSET $2",
        limit,
        (page - 1) * limit,
    )
    total = await pool.fetchval(f"SELECT count(*) FROM push_dead_letters WHERE {where}")
    return ok(load_all(DeadLetter, rows), page=page, limit=limit, total=total)


@routes.post(
    "/api/admin/push-dead-letters/{id}/replay",
    summary="Admin: send a dead-lettered push again",
    description="Queues a new push job to the letter's devices (tries from zero); 409 when it was already"
    " replayed or its user no longer exists.",
    auth=True,
    body=OptionalReason,
    response=DeadLetter,
    errors=(400, 401, 403, 404, 409),
)
async def replay(request: web.Request, body: OptionalReason) -> web.Response:
    """Requeue the push once."""
    claims = require_admin(request)
    raw = request.match_info.get("id", "")
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError("not_found", f"No dead letter {raw!r}.")
    letter_id = int(raw)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await conn.fetchrow("SELECT * FROM push_dead_letters WHERE id = $1 FOR UPDATE", letter_id)
        if row is None:
            raise ApiError("not_found", f"No dead letter {letter_id}.")
        if row["replayed_at"] is not None:
            raise ApiError(
                "conflict", "This push was already replayed.", details={"replayJobId": row["replay_job_id"]}
            )
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", row["user_id"]):
            raise ApiError("conflict", "The user of this push no longer exists.")
        job_id = await conn.fetchval(
            "INSERT INTO push_jobs (user_id, type, title, body, data, collapse_key, tokens)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            row["user_id"], row["type"], row["title"], row["body"], row["data"], row["collapse_key"],
            row["tokens"],
        )  # fmt: skip
        await conn.execute(f"NOTIFY {PUSH_CHANNEL}")
        # Marking a letter replayed is the one change push_dead_letters takes after its insert.
        done = await conn.fetchrow(
            "UPDATE push_dead_letters SET replayed_at = now(), replay_job_id = $2 WHERE id = $1 RETURNING *",
            letter_id,
            job_id,
        )
        await audit.record(
            conn, actor_id=claims.user_id, action="push.replay", target_type="push_dead_letter",
            target_id=str(letter_id), before={"replayedAt": None}, after={"replayJobId": job_id},
            reason=body.reason,
        )  # fmt: skip
    return ok(load(DeadLetter, done))
