"""/api/admin/disputes: the disputes queue, one dispute's whole story, and resolving it.

A resolution goes through the order state machine (domain.orders.transition, the order row locked),
so of two admins resolving one dispute at once exactly one wins; the other gets 409 with the
order's new state. `split` gives the doer `doerAmount` paise of the order's amount (the platform fee
taken from that share in the order's proportion) and refunds the rest to the client through the
gateway; the escrow is emptied exactly. The audit row is written by the transition itself."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from domain.gateways import gateway_for
from domain.order_states import EscrowState, Order, OrderStatus, load_order
from domain.orders import transition
from hub.keys import POOL, SETTINGS
from hub.model import EpochMs, Uuid
from rest.admin_common import Note, require_admin
from rest.api import Body, FieldErrors, Routes, Wire, int_query, load_all, ok
from rest.errors import ApiError
from rest.http import path_uuid, query_choice, query_int
from rest.idempotency import PARAMETER, idempotent
from rest.messages import Message

routes = Routes("admin")

MESSAGES_MAX = 500
"""Chat messages a dispute's detail carries at most (the newest; GET /api/orders/{id}/messages
pages further back for an admin too)."""


class OrderEvent(Wire):
    """One step of an order's history, as the state machine recorded it."""

    id: Annotated[int, msgspec.Meta(ge=1)]
    action: str
    actor_id: Annotated[Uuid | None, msgspec.Meta(description="null: the system (a timer)")]
    previous_status: OrderStatus | None
    status: OrderStatus
    escrow_state: EscrowState
    details: dict[str, Any]
    created_at: EpochMs


class DisputeDetail(Wire):
    """A disputed order, its chat and its history."""

    order: Order
    messages: Annotated[list[Message], msgspec.Meta(description=f"the newest {MESSAGES_MAX}, oldest first")]
    messages_total: Annotated[int, msgspec.Meta(ge=0)]
    events: Annotated[list[OrderEvent], msgspec.Meta(description="oldest first")]


class DisputeResolution(Body):
    """How the dispute ends: release (all to the doer), refund (all to the client) or split."""

    outcome: Literal["release", "refund", "split"]
    doer_amount: (
        Annotated[
            int, msgspec.Meta(ge=1, description="split only: paise of the order's amount the doer gets")
        ]
        | None
    ) = None
    note: Note | None = None

    def __post_init__(self) -> None:
        if self.outcome == "split" and self.doer_amount is None:
            raise FieldErrors({"doerAmount": "is required for a split"})
        if self.outcome != "split" and self.doer_amount is not None:
            raise FieldErrors({"doerAmount": "is only for a split"})


_FILTERS = {
    "open": "o.status = 'disputed'",
    "resolved": "o.dispute IS NOT NULL AND o.status <> 'disputed'",
    "all": "o.dispute IS NOT NULL",
}


@routes.get(
    "/api/admin/disputes",
    summary="Admin: the disputes queue, open ones first",
    description="status: open (default), resolved or all. Open disputes come first, oldest opened"
    " first; then resolved ones, most recently resolved first.",
    auth=True,
    response=list[Order],
    meta={"page": int, "limit": int, "total": int},
    parameters=(
        {"name": "status", "in": "query", "required": False, "schema": {"enum": list(_FILTERS)}},
        int_query("page", 1, 10**6),
        int_query("limit", 1, 200),
    ),
    errors=(400, 401, 403),
)
async def list_disputes(request: web.Request) -> web.Response:
    """Disputed orders, open first."""
    require_admin(request)
    status = query_choice(request, "status", _FILTERS, "open")
    page = query_int(request, "page", 1, 1, 10**6)
    limit = query_int(request, "limit", 50, 1, 200)
    where = _FILTERS[status]
    pool = request.app[POOL]
    rows = await pool.fetch(
        f"SELECT * FROM orders o WHERE {where} ORDER BY o.status <> 'disputed',"
        " CASE WHEN o.status = 'disputed' THEN (o.dispute->>'openedAt')::bigint"
        " ELSE -(o.dispute->>'resolvedAt')::bigint END NULLS LAST, o.id LIMIT $1 OFFSET $2",
        limit,
        (page - 1) * limit,
    )
    total = await pool.fetchval(f"SELECT count(*) FROM orders o WHERE {where}")
    return ok([load_order(r) for r in rows], page=page, limit=limit, total=total)


@routes.get(
    "/api/admin/disputes/{orderId}",
    summary="Admin: a disputed order with its chat and its history",
    description="404 when the order does not exist or was never disputed.",
    auth=True,
    response=DisputeDetail,
    errors=(401, 403, 404),
)
async def get_dispute(request: web.Request) -> web.Response:
    """The order, its newest messages and every order event."""
    require_admin(request)
    order_id = path_uuid(request, "orderId")
    pool = request.app[POOL]
    row = await pool.fetchrow("SELECT * FROM orders WHERE id = $1 AND dispute IS NOT NULL", order_id)
    if row is None:
        raise ApiError("not_found", f"No disputed order {order_id}.")
    messages = await pool.fetch(
        "SELECT * FROM (SELECT * FROM messages WHERE order_id = $1 ORDER BY seq DESC LIMIT $2) m"
        " ORDER BY seq",
        order_id,
        MESSAGES_MAX,
    )
    total = await pool.fetchval("SELECT count(*) FROM messages WHERE order_id = $1", order_id)
    events = await pool.fetch("SELECT * FROM order_events WHERE order_id = $1 ORDER BY id", order_id)
    detail = DisputeDetail(
        order=load_order(row),
        messages=load_all(Message, messages),
        messages_total=total,
        events=load_all(OrderEvent, events),
    )
    return ok(detail)


@routes.post(
    "/api/admin/disputes/{orderId}/resolve",
    summary="Admin: resolve a dispute by release, refund or split",
    description="release: the escrow to the doer (order completed); refund: all back to the client"
    " (cancelled); split: doerAmount (1 to amount - 1 paise, else 422) to the doer, less the fee in"
    " proportion, the rest refunded (completed). 409 (details: status, escrowState) when the order is"
    " not disputed, e.g. another admin resolved it first; 502/503 when the gateway refuses or cannot"
    " be asked for the refund (nothing changed).",
    auth=True,
    body=DisputeResolution,
    response=Order,
    parameters=(PARAMETER,),
    errors=(400, 401, 403, 404, 409, 422, 502, 503),
)
async def resolve(request: web.Request, body: DisputeResolution) -> web.Response:
    """Resolve the dispute through the order state machine."""
    claims = require_admin(request)
    order_id = path_uuid(request, "orderId")
    settings = request.app[SETTINGS]

    async def run() -> web.Response:
        async with request.app[POOL].acquire() as conn, conn.transaction():
            order = await transition(
                conn, order_id, "resolve", claims.user_id, is_admin=True, gateway=gateway_for(settings),
                outcome=body.outcome, note=body.note, doer_amount=body.doer_amount,
            )  # fmt: skip
        return ok(order)

    return await idempotent(request, claims.user_id, run)
