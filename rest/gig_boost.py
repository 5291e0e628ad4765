"""POST /api/gigs/{id}/boost: a paid feature. The owner's wallet is charged through the ledger
(wallet -> platform revenue, kind gig_boost) in the same transaction that moves `boosted_until`
forward; boosted gigs sort first in lists while boosted_until is in the future. The request needs an
Idempotency-Key: a repeat replays the first answer and charges nothing more; a retry after a failure
past the charge's commit answers the boost already paid for. The charge's ledger reference names the
key's record (`<gig>:<record>:<key>`), so the key used again after its record was swept (retention)
is a new boost, charged anew."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from domain import ledger
from hub.keys import POOL
from rest import idempotency
from rest.api import Body, Routes, Wire, ok
from rest.errors import ApiError
from rest.gig_search import GIG_COLUMNS, Gig, load_gig
from rest.gigs import owned_gig
from rest.http import path_uuid, require_user

routes = Routes("gigs")

BOOST_PRICE_PER_DAY = 4_900  # paise (₹49) per day of boost
MAX_BOOST_DAYS = 30


class BoostInput(Body):
    """POST /api/gigs/{id}/boost."""

    days: Annotated[int, msgspec.Meta(ge=1, le=MAX_BOOST_DAYS)]


class BoostCharge(Wire):
    """What a boost cost."""

    amount: Annotated[int, msgspec.Meta(ge=1, description="paise")]
    currency: str
    days: Annotated[int, msgspec.Meta(ge=1)]


class Boosted(Wire):
    """The boosted gig and its charge."""

    gig: Gig
    charge: BoostCharge


@routes.post(
    "/api/gigs/{id}/boost",
    summary="Boost an open gig: listed first while the boost lasts; charged to the owner's wallet",
    description=f"Costs {BOOST_PRICE_PER_DAY} paise a day, 1 to {MAX_BOOST_DAYS} days; extends a"
    " running boost. Owner only: others get 403. A short wallet gets 409 with"
    " details.reason insufficient_funds.",
    auth=True,
    body=BoostInput,
    response=Boosted,
    parameters=({**idempotency.PARAMETER, "required": True},),
    errors=(403, 404, 409, 422),
)
async def boost(request: web.Request, body: BoostInput) -> web.Response:
    """Boost an open gig for `days` (1-30) days (owner), charging days x BOOST_PRICE_PER_DAY to the
    owner's wallet; a boost still running is extended. Needs an Idempotency-Key."""
    claims = require_user(request)
    gig_id = path_uuid(request)

    async def run() -> web.Response:
        days = body.days
        # One charge per gig and key record: the ledger itself refuses a second posting.
        reference = f"{gig_id}:{idempotency.claim_of(request).tag}"
        async with request.app[POOL].acquire() as conn, conn.transaction():
            gig = await owned_gig(conn, gig_id, claims.user_id)
            charged = await conn.fetchval(
                "SELECT amount FROM ledger_transfers WHERE kind = 'gig_boost' AND reference = $1", reference
            )
            if charged is not None:  # an earlier attempt with this key paid, then failed to answer
                amount = int(charged)
                row = await conn.fetchrow(f"SELECT {GIG_COLUMNS} FROM gigs g WHERE g.id = $1", gig_id)
            else:
                if gig["status"] != "open":
                    status = gig["status"]
                    raise ApiError("conflict", f"Only an open gig can be boosted; this one is {status}.")
                amount = days * BOOST_PRICE_PER_DAY
                await ledger.charge_wallet(
                    conn,
                    user_id=claims.user_id,
                    amount=amount,
                    currency=gig["currency"],
                    reason="gig_boost",
                    reference=reference,
                )
                row = await conn.fetchrow(
                    "UPDATE gigs g SET is_boosted = true, updated_at = now(), boosted_until ="
                    " greatest(coalesce(g.boosted_until, now()), now()) + make_interval(days => $2)"
                    f" WHERE g.id = $1 RETURNING {GIG_COLUMNS}",
                    gig_id,
                    days,
                )
        charge = BoostCharge(amount=amount, currency=gig["currency"], days=days)
        return ok(Boosted(gig=load_gig(row), charge=charge))

    return await idempotency.idempotent(request, claims.user_id, run, required=True)
