"""/api/orders: listing the caller's orders, reading one, and the action routes, each one
domain.orders.transition in its own transaction (idempotent with an Idempotency-Key)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from domain.gateways import gateway_for
from domain.order_states import STATUSES, order_json
from domain.orders import transition
from hub.keys import POOL, SETTINGS
from rest.errors import ApiError
from rest.http import ok, path_uuid, query_int, read_json, require_user
from rest.idempotency import PARAMETER, idempotent
from rest.openapi import BEARER, envelope, errors, json_body, json_response, list_envelope, path_id
from rest.order_schemas import ACTION_BODIES, ORDER_SCHEMA, parse_action_body

routes = web.RouteTableDef()

_ROUTE_ACTIONS = {
    "submit": "submit",
    "request-revision": "request_revision",
    "approve": "approve",
    "cancel": "cancel",
    "dispute": "dispute",
    "resolve": "resolve",
}


@routes.get("/api/orders")
async def list_orders(request: web.Request) -> web.Response:
    """The caller's orders, newest first; ?status=, ?role=client|doer, ?page=, ?limit=."""
    claims = require_user(request)
    status = request.query.get("status") or None
    role = request.query.get("role") or None
    if status is not None and status not in STATUSES:
        raise ApiError("bad_request", f"Query parameter status must be one of {', '.join(STATUSES)}.")
    if role is not None and role not in ("client", "doer"):
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
    return ok([order_json(r) for r in rows], page=page, limit=limit, total=total)


@routes.get("/api/orders/{id}")
async def get_order(request: web.Request) -> web.Response:
    """One order of the caller's (or any, for an admin); 404 for anyone else."""
    claims = require_user(request)
    order_id = path_uuid(request)
    row = await request.app[POOL].fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
    if row is None or (
        claims.user_id not in (str(row["client_id"]), str(row["doer_id"])) and "admin" not in claims.roles
    ):
        raise ApiError("not_found", f"No order {order_id} of yours.")
    return ok(order_json(row))


async def _act(request: web.Request) -> web.Response:
    claims = require_user(request)
    order_id = path_uuid(request)
    action = _ROUTE_ACTIONS[request.match_info["action"]]
    args = parse_action_body(action, await read_json(request))
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


for _path in _ROUTE_ACTIONS:
    routes.post(f"/api/orders/{{id}}/{{action:{_path}}}")(_act)

_DESCRIPTIONS = {
    "submit": ("Doer: deliver the work (in_progress -> submitted)", ["doer"]),
    "request-revision": ("Client: ask for changes, with a reason (submitted -> in_progress)", ["client"]),
    "approve": ("Client: accept the work; releases escrow to the doer's wallet (submitted -> completed)", []),
    "cancel": ("Client or doer: cancel; after funding the payment is refunded (-> cancelled)", []),
    "dispute": ("Client or doer: open a dispute, with a reason (in_progress|submitted -> disputed)", []),
    "resolve": ("Admin: settle a dispute by releasing or refunding the escrow", []),
}

_ORDER_ERRORS = errors(400, 401, 403, 404, 409, 422, 502, 503)

OPENAPI: dict[str, dict[str, dict[str, Any]]] = {
    "/api/orders": {
        "get": {
            "summary": "List my orders (as client or doer), newest first",
            "tags": ["orders"],
            "security": BEARER,
            "parameters": [
                {"name": "status", "in": "query", "required": False, "schema": {"enum": list(STATUSES)}},
                {"name": "role", "in": "query", "required": False, "schema": {"enum": ["client", "doer"]}},
                {
                    "name": "page",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                },
            ],
            "responses": {"200": json_response(list_envelope(ORDER_SCHEMA)), **errors(400, 401)},
        }
    },
    "/api/orders/{id}": {
        "get": {
            "summary": "One order of mine (admins: any order)",
            "tags": ["orders"],
            "security": BEARER,
            "parameters": [path_id(description="the order's id")],
            "responses": {"200": json_response(envelope(ORDER_SCHEMA)), **errors(401, 404)},
        }
    },
    **{
        f"/api/orders/{{id}}/{path}": {
            "post": {
                "summary": summary,
                "description": "409 (details: status, escrowState) when the order's state does not allow"
                " it; 403 when the caller's role never may; 404 for non-participants.",
                "tags": ["orders"],
                "security": BEARER,
                "parameters": [path_id(description="the order's id"), PARAMETER],
                "requestBody": json_body(ACTION_BODIES[_ROUTE_ACTIONS[path]], required=path != "approve"),
                "responses": {"200": json_response(envelope(ORDER_SCHEMA)), **_ORDER_ERRORS},
            }
        }
        for path, (summary, _) in _DESCRIPTIONS.items()
    },
}
