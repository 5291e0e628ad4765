"""/api/orders: listing the caller's orders, reading one, and the action routes, each one
domain.orders.transition in its own transaction (idempotent with an Idempotency-Key). Each action
has its body model; the Order they answer is domain/order_states.py's."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from domain.gateways import gateway_for
from domain.order_states import STATUSES, Order, load_order
from domain.orders import transition
from hub.keys import POOL, SETTINGS
from rest.api import Body, FieldErrors, Routes, has_control, int_query, ok, read_body
from rest.errors import ApiError
from rest.http import path_uuid, query_choice, query_int, require_user
from rest.idempotency import PARAMETER, idempotent

routes = Routes("orders")

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
_URL = re.compile(r"https?://[^\s]{1,2040}")
_CONTROL = "must not contain control characters"


def _no_control(**texts: str | None) -> None:
    """FieldErrors naming each of `texts` (wire name -> value) that holds a control character."""
    bad = {name: _CONTROL for name, text in texts.items() if text is not None and has_control(text)}
    if bad:
        raise FieldErrors(bad)


class DeliverableInput(Body, omit_defaults=True):
    """One item of a submission: an http(s) URL (surrounding spaces dropped) and an optional note."""

    url: Annotated[str, msgspec.Meta(max_length=2048, extra_json_schema={"pattern": r"^\s*https?://\S+\s*$"})]
    description: Text | None = None

    def __post_init__(self) -> None:
        # Nested strings are not stripped by Body; a ValueError here is reported on `deliverables`.
        self.url = self.url.strip()
        if self.description is not None:
            self.description = self.description.strip()
        if not _URL.fullmatch(self.url) or self.description == "":
            raise ValueError("each item is {url: http(s) URL, description?: text}")


class SubmitInput(Body):
    """POST /api/orders/{id}/submit: the work delivered."""

    deliverables: Annotated[list[DeliverableInput], msgspec.Meta(min_length=1, max_length=20)]

    def __post_init__(self) -> None:
        texts = [t for d in self.deliverables for t in (d.url, d.description) if t is not None]
        _no_control(deliverables="".join(texts))

    def args(self) -> dict[str, Any]:
        return {"deliverables": msgspec.to_builtins(self.deliverables)}


class ReasonInput(Body):
    """POST /api/orders/{id}/request-revision and /dispute: why."""

    reason: Text

    def __post_init__(self) -> None:
        _no_control(reason=self.reason)

    def args(self) -> dict[str, Any]:
        return {"reason": self.reason}


class CancelInput(Body):
    """POST /api/orders/{id}/cancel: an optional reason."""

    reason: Text | None = None

    def __post_init__(self) -> None:
        _no_control(reason=self.reason)

    def args(self) -> dict[str, Any]:
        return {"reason": self.reason}


class ResolveInput(Body):
    """POST /api/orders/{id}/resolve (admin): release the escrow to the doer or refund the client."""

    outcome: Literal["release", "refund"]
    note: Text | None = None

    def __post_init__(self) -> None:
        _no_control(note=self.note)

    def args(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "note": self.note}


class ApproveInput(Body):
    """POST /api/orders/{id}/approve: no fields (an empty body will do)."""

    def args(self) -> dict[str, Any]:
        return {}


ActionInput = SubmitInput | ReasonInput | CancelInput | ResolveInput | ApproveInput

# path segment -> (transition action, body model, summary)
_ACTIONS: dict[str, tuple[str, type[ActionInput], str]] = {
    "submit": ("submit", SubmitInput, "Doer: deliver the work (in_progress -> submitted)"),
    "request-revision": (
        "request_revision",
        ReasonInput,
        "Client: ask for changes, with a reason (submitted -> in_progress)",
    ),
    "approve": (
        "approve",
        ApproveInput,
        "Client: accept the work; releases escrow to the doer's wallet (submitted -> completed)",
    ),
    "cancel": (
        "cancel",
        CancelInput,
        "Client or doer: cancel; after funding the payment is refunded (-> cancelled)",
    ),
    "dispute": (
        "dispute",
        ReasonInput,
        "Client or doer: open a dispute, with a reason (in_progress|submitted -> disputed)",
    ),
    "resolve": ("resolve", ResolveInput, "Admin: settle a dispute by releasing or refunding the escrow"),
}

_ROLES = ("client", "doer")
_LIST_PARAMETERS = (
    {"name": "status", "in": "query", "required": False, "schema": {"enum": list(STATUSES)}},
    {"name": "role", "in": "query", "required": False, "schema": {"enum": list(_ROLES)}},
    int_query("page", 1, 10000),
    int_query("limit", 1, 100),
)
_ORDER_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
    "description": "the order's id",
}


@routes.get(
    "/api/orders",
    summary="List my orders (as client or doer), newest first",
    auth=True,
    response=list[Order],
    meta={"page": int, "limit": int, "total": int},
    parameters=_LIST_PARAMETERS,
    errors=(400,),
)
async def list_orders(request: web.Request) -> web.Response:
    """The caller's orders, newest first; ?status=, ?role=client|doer, ?page=, ?limit=."""
    claims = require_user(request)
    status = query_choice(request, "status", STATUSES, None)
    role = request.query.get("role") or None
    if role is not None and role not in _ROLES:
        raise ApiError("bad_request", "Query parameter role must be client or doer.")
    page = query_int(request, "page", 1, 1, 10_000)
    limit = query_int(request, "limit", 20, 1, 100)
    where = {
        None: "(client_id = $1 OR doer_id = $1)",
        "client": "client_id = $1",
        "doer": "doer_id = $1",
    }[role]
    where += " AND ($2::text IS NULL OR status = $2)"
    pool = request.app[POOL]
    rows = await pool.fetch(
        f"SELECT *, count(*) OVER () AS total FROM orders WHERE {where}"
        " ORDER BY created_at DESC, id LIMIT $3 OFFSET $4",
        claims.user_id,
        status,
        limit,
        (page - 1) * limit,
    )
    total = (
        rows[0]["total"]
        if rows
        else await pool.fetchval(f"SELECT count(*) FROM orders WHERE {where}", claims.user_id, status)
    )
    return ok([load_order(r) for r in rows], page=page, limit=limit, total=total)


@routes.get(
    "/api/orders/{id}",
    summary="One order of mine (admins: any order)",
    auth=True,
    response=Order,
    parameters=(_ORDER_ID,),
    errors=(404,),
)
async def get_order(request: web.Request) -> web.Response:
    """One order of the caller's (or any, for an admin); 404 for anyone else."""
    claims = require_user(request)
    order_id = path_uuid(request)
    row = await request.app[POOL].fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
    if row is None or (
        claims.user_id not in (str(row["client_id"]), str(row["doer_id"])) and "admin" not in claims.roles
    ):
        raise ApiError("not_found", f"No order {order_id} of yours.")
    return ok(load_order(row))


@routes.post(
    f"/api/orders/{{id}}/{{action:{'|'.join(_ACTIONS)}}}",
    summary="An order action",
    description="409 (details: status, escrowState) when the order's state does not allow it; 403 when"
    " the caller's role never may; 404 for non-participants.",
    document={
        f"/api/orders/{{id}}/{path}": {
            "summary": summary,
            "body": model,
            "body_required": model is not ApproveInput,
        }
        for path, (_, model, summary) in _ACTIONS.items()
    },
    parse=False,  # the body's model depends on the action; read after the token and the order id
    auth=True,
    response=Order,
    parameters=(_ORDER_ID, PARAMETER),
    errors=(400, 403, 404, 409, 422, 502, 503),
)
async def act(request: web.Request) -> web.Response:
    """Apply the path's action to the order (see domain.orders.transition for who may do what)."""
    claims = require_user(request)
    order_id = path_uuid(request)
    action, model, _ = _ACTIONS[request.match_info["action"]]
    args = (await read_body(request, model)).args()
    settings = request.app[SETTINGS]

    async def run() -> web.Response:
        async with request.app[POOL].acquire() as conn, conn.transaction():
            order = await transition(
                conn,
                order_id,
                action,
                claims.user_id,
                is_admin="admin" in claims.roles,
                gateway=gateway_for(settings),
                **args,
            )
        return ok(order)

    return await idempotent(request, claims.user_id, run)
