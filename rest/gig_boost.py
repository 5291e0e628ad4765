"""POST /api/gigs/{id}/boost: a paid feature. The owner's wallet is charged through the ledger
(wallet -> platform revenue, kind gig_boost) in the same transaction that moves `boosted_until`
forward; boosted gigs sort first in lists while boosted_until is in the future. The request needs an
Idempotency-Key: a repeat replays the first answer and charges nothing more."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from domain import ledger
from hub.keys import POOL
from rest import idempotency
from rest.errors import ApiError
from rest.gig_search import GIG_COLUMNS, GIG_SCHEMA, gig_json
from rest.gigs import owned_gig
from rest.http import Fields, ok, path_uuid, read_json, require_user
from rest.openapi import BEARER, envelope, errors, json_body, json_response, path_id

routes = web.RouteTableDef()

BOOST_PRICE_PER_DAY = 4_900  # paise (₹49) per day of boost
MAX_BOOST_DAYS = 30


@routes.post("/api/gigs/{id}/boost")
async def boost(request: web.Request) -> web.Response:
    """Boost an open gig for `days` (1-30) days (owner), charging days x BOOST_PRICE_PER_DAY to the
    owner's wallet; a boost still running is extended. Needs an Idempotency-Key."""
    claims = require_user(request)
    gig_id = path_uuid(request)

    async def run() -> web.Response:
        f = Fields(await read_json(request))
        f.unknown(("days",))
        days = f.integer("days", low=1, high=MAX_BOOST_DAYS)
        f.check()
        key = request.headers[idempotency.HEADER].strip()
        async with request.app[POOL].acquire() as conn, conn.transaction():
            gig = await owned_gig(conn, gig_id, claims.user_id)
            if gig["status"] != "open":
                raise ApiError("conflict", f"Only an open gig can be boosted; this one is {gig['status']}.")
            amount = days * BOOST_PRICE_PER_DAY
            await ledger.charge_wallet(
                conn,
                user_id=claims.user_id,
                amount=amount,
                currency=gig["currency"],
                reason="gig_boost",
                # one charge per gig and key: the ledger itself refuses a second posting
                reference=f"{gig_id}:{key}",
            )
            row = await conn.fetchrow(
                "UPDATE gigs g SET is_boosted = true, updated_at = now(), boosted_until ="
                " greatest(coalesce(g.boosted_until, now()), now()) + make_interval(days => $2)"
                f" WHERE g.id = $1 RETURNING {GIG_COLUMNS}",
                gig_id,
                days,
            )
        charge = {"amount": amount, "currency": gig["currency"], "days": days}
        return ok({"gig": gig_json(row), "charge": charge})

    return await idempotency.idempotent(request, claims.user_id, run, required=True)


OPENAPI: dict[str, dict[str, dict[str, Any]]] = {
    "/api/gigs/{id}/boost": {
        "post": {
            "summary": "Boost an open gig: listed first while the boost lasts; charged to the owner's wallet",
            "description": f"Costs {BOOST_PRICE_PER_DAY} paise a day, 1 to {MAX_BOOST_DAYS} days; extends a"
            " running boost. Owner only: others get 403. A short wallet gets 409 with"
            " details.reason insufficient_funds.",
            "tags": ["gigs"],
            "security": BEARER,
            "parameters": [path_id(description="the gig's id"), {**idempotency.PARAMETER, "required": True}],
            "requestBody": json_body(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["days"],
                    "properties": {"days": {"type": "integer", "minimum": 1, "maximum": MAX_BOOST_DAYS}},
                }
            ),
            "responses": {
                "200": json_response(
                    envelope(
                        {
                            "type": "object",
                            "required": ["gig", "charge"],
                            "properties": {
                                "gig": GIG_SCHEMA,
                                "charge": {
                                    "type": "object",
                                    "required": ["amount", "currency", "days"],
                                    "properties": {
                                        "amount": {"type": "integer", "minimum": 1},
                                        "currency": {"type": "string"},
                                        "days": {"type": "integer", "minimum": 1},
                                    },
                                },
                            },
                        }
                    )
                ),
                **errors(400, 401, 403, 404, 409, 422),
            },
        }
    }
}
