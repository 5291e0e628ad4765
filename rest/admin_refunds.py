"""/api/admin/refunds (admin role): the refunds the gateway failed, and retrying one now.

A refund the gateway failed is retried by the timers every REFUND_RETRY_AFTER_S and becomes
`needs_attention` after REFUND_MAX_ATTEMPTS requests (domain/refunds.py, workers/timers.py); its money
waits in platform:refunds_pending meanwhile. Admins list them here and retry one at once (through
the same domain.refunds.retry, which never refunds twice). A caller without the admin role gets 403."""

from __future__ import annotations

from typing import Annotated, Literal

import asyncpg
import msgspec
from aiohttp import web

from domain import audit, refunds
from domain.gateway import GatewayError
from domain.gateways import gateway_for
from hub.keys import POOL, SETTINGS
from hub.model import EpochMs, Uuid
from hub.tokens import Claims
from rest.api import Routes, Wire, int_query, load, load_all, ok
from rest.errors import ApiError
from rest.http import path_uuid, query_choice, query_int, require_user
from rest.idempotency import PARAMETER, idempotent

routes = Routes("admin")

Status = Literal["initiated", "processed", "failed", "needs_attention"]
# ?status= -> the rows it lists. "failed" is every refund whose money is still owed to its client:
# failed, needs_attention, or retried and not yet processed.
_FILTERS: dict[str, str] = {
    "failed": "owed",
    "needs_attention": "status = 'needs_attention'",
    "initiated": "status = 'initiated'",
    "processed": "status = 'processed'",
}
_SELECT = (
    "SELECT r.id, r.kind, r.order_id, o.client_id, r.payment_id, r.gateway_refund_id, r.amount, r.currency,"
    " r.status, r.owed, r.attempts, r.failure_reason, r.previous_refund_ids, r.created_at, r.updated_at"
    " FROM gateway_refunds r JOIN orders o ON o.id = r.order_id"
)


class AdminRefund(Wire):
    """A refund of an order's payment as admins see it."""

    id: Uuid
    kind: Annotated[
        Literal["order", "stray"],
        msgspec.Meta(description="order: the order's own payment; stray: a payment that could not fund it"),
    ]
    order_id: Uuid
    client_id: Uuid
    payment_id: str
    gateway_refund_id: Annotated[str | None, msgspec.Meta(description="the gateway's current refund")]
    amount: Annotated[int, msgspec.Meta(ge=1, description="paise")]
    currency: str
    status: Status
    owed: Annotated[bool, msgspec.Meta(description="the money waits in platform:refunds_pending")]
    attempts: Annotated[int, msgspec.Meta(ge=1, description="refund requests made")]
    failure_reason: str | None
    previous_refund_ids: list[str]
    created_at: EpochMs
    updated_at: EpochMs


def _admin(request: web.Request) -> Claims:
    claims = require_user(request)
    if "admin" not in claims.roles:
        raise ApiError("forbidden", "Only an admin can see or retry refunds.")
    return claims


@routes.get(
    "/api/admin/refunds",
    summary="Admin: refunds by status (default failed: every refund whose money is still owed)",
    description="status=failed (default) lists the refunds the gateway failed whose money is still owed"
    " to the client (failed, needs_attention, or retried and awaiting the gateway); needs_attention"
    " those the timers gave up on after REFUND_MAX_ATTEMPTS. Oldest change first.",
    auth=True,
    response=list[AdminRefund],
    meta={"page": int, "limit": int, "total": int},
    parameters=(
        {"name": "status", "in": "query", "required": False, "schema": {"enum": list(_FILTERS)}},
        int_query("page", 1, 10**6),
        int_query("limit", 1, 200),
    ),
    errors=(400, 403),
)
async def list_refunds(request: web.Request) -> web.Response:
    """The refunds in one status, oldest change first, paged."""
    _admin(request)
    status = query_choice(request, "status", _FILTERS, "failed")
    page = query_int(request, "page", 1, 1, 10**6)
    limit = query_int(request, "limit", 50, 1, 200)
    where = _FILTERS[status]
    pool = request.app[POOL]
    rows = await pool.fetch(
        f"{_SELECT} WHERE r.{where} ORDER BY r.updated_at, r.id LIMIT $1 OFFSET $2", limit, (page - 1) * limit
    )
    total = await pool.fetchval(f"SELECT count(*) FROM gateway_refunds r WHERE r.{where}")
    return ok(load_all(AdminRefund, rows), page=page, limit=limit, total=total)


@routes.post(
    "/api/admin/refunds/{id}/retry",
    summary="Admin: ask the gateway again now for a failed refund",
    description="Only a refund in status failed or needs_attention (else 409 with details.status). The"
    " gateway's refunds of the payment are listed first, so a refund it already holds is used, never"
    " made twice. meta.outcome: processed (settled), initiated (accepted, its webhook settles it),"
    " unknown (no definite answer) or refused; on the last two the refund keeps its status.",
    auth=True,
    response=AdminRefund,
    meta={"outcome": str},
    parameters=(PARAMETER,),
    errors=(403, 404, 409, 503),
)
async def retry_refund(request: web.Request) -> web.Response:
    """Retry one failed refund now, whatever its attempts and its last try."""
    claims = _admin(request)
    refund_id = path_uuid(request)
    settings = request.app[SETTINGS]

    async def run() -> web.Response:
        try:
            gateway = gateway_for(settings)
        except GatewayError as exc:
            raise ApiError("unavailable", f"No payment gateway to ask ({exc}).") from None
        pool = request.app[POOL]
        async with pool.acquire() as conn, conn.transaction():
            try:
                row = await conn.fetchrow(
                    "SELECT * FROM gateway_refunds WHERE id = $1 FOR UPDATE NOWAIT", refund_id
                )
            except asyncpg.LockNotAvailableError:
                raise ApiError(
                    "conflict", "This refund is being retried right now; look again shortly."
                ) from None
            if row is None:
                raise ApiError("not_found", f"No refund {refund_id}.")
            if row["status"] not in refunds.RETRYABLE:
                raise ApiError(
                    "conflict",
                    f"A refund in status {row['status']} is not retried.",
                    details={"status": row["status"]},
                )
            outcome = await refunds.retry(conn, row, gateway)
            final = await conn.fetchrow(f"{_SELECT} WHERE r.id = $1", refund_id)
            assert final is not None
            await audit.record(
                conn, actor_id=claims.user_id, action="refund.retry", target_type="refund",
                target_id=refund_id,
                before={"status": row["status"], "attempts": row["attempts"]},
                after={"status": final["status"], "attempts": final["attempts"], "outcome": outcome},
            )  # fmt: skip
        return ok(load(AdminRefund, final), outcome=outcome)

    return await idempotent(request, claims.user_id, run)
