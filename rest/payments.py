"""/api/payments: paying an order into escrow through the gateway's checkout.

create-order makes (once per order) the gateway order the checkout SDK pays; verify checks the
checkout's signature against the gateway order id gigwire stored and funds the order. The webhook
(rest/webhooks.py) funds through the same `fund_order`, so whichever arrives first funds the order
and the other finds it funded: the order row lock makes it once. In dev (sandbox gateway) POST
/api/dev/sandbox/checkout completes a checkout offline, signed exactly as Razorpay's is."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Annotated

import asyncpg
import msgspec
from aiohttp import web

from domain import ledger, notices, refunds
from domain.gateway import (
    Gateway,
    GatewayError,
    RefundUnconfirmed,
    checkout_signature,
    refund_once,
    signature_ok,
)
from domain.gateway_sandbox import SandboxGateway
from domain.gateways import gateway_for
from domain.order_states import Order, load_order
from domain.orders import transition
from hub.keys import POOL, SETTINGS
from hub.model import Uuid
from rest.account_rules import require_account
from rest.api import Body, FieldErrors, Routes, Wire, ok, read_body
from rest.errors import ApiError
from rest.http import require_user
from rest.idempotency import PARAMETER, idempotent

if TYPE_CHECKING:
    from hub.db import Conn

log = logging.getLogger("gigwire.payments")
routes = Routes("payments")

GatewayId = Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9_]{1,64}$")]


class PayInput(Body):
    """POST /api/payments/create-order."""

    order_id: Annotated[str, msgspec.Meta(pattern="^[0-9a-fA-F-]{36}$", extra_json_schema={"format": "uuid"})]

    def __post_init__(self) -> None:
        try:
            self.order_id = str(uuid.UUID(self.order_id))
        except ValueError:
            raise FieldErrors({"orderId": "is not a UUID"}) from None


class Checkout(Wire):
    """What the checkout SDK needs to pay an order's escrow: the gateway order and the public key."""

    key_id: str
    gateway_order_id: str
    amount: Annotated[int, msgspec.Meta(ge=1, description="paise")]
    currency: str
    order_id: Uuid
    status: Annotated[str, msgspec.Meta(description="the order's status")]


class CheckoutResult(Body, rename=None):
    """What the checkout SDK hands the client once paid (Razorpay's names): the body of
    POST /api/payments/verify, and the answer of the sandbox checkout."""

    razorpay_order_id: GatewayId
    razorpay_payment_id: GatewayId
    razorpay_signature: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class SandboxCheckoutInput(Body):
    """POST /api/dev/sandbox/checkout."""

    gateway_order_id: GatewayId


async def fund_order(
    conn: Conn,
    *,
    gateway_order_id: str,
    payment_id: str,
    actor_id: str | None,
    gateway: Gateway,
    amount: int | None = None,
) -> tuple[Order | None, str]:
    """Fund the order whose stored gateway order id is `gateway_order_id` with `payment_id`, inside
    the caller's transaction, at most once. Returns (the Order or None, outcome): "funded",
    "already_funded" (the same payment again), "unknown_order", or "stray_refunded" when the payment
    cannot fund the order (another payment funded it, the order was cancelled first, or the amount
    differs): such a payment is refunded through `gateway` at once and booked in and out of the
    order's escrow, once per payment id. A gateway failure there raises ApiError 502 (nothing is
    recorded, so the gateway's webhook retry or the client's verify retry tries again)."""
    row = await conn.fetchrow(
        "SELECT * FROM orders WHERE payment_gateway_order_id = $1 FOR UPDATE", gateway_order_id
    )
    if row is None:
        return None, "unknown_order"
    # The payment that funded this order, seen again (whatever amount a later event reports):
    # nothing to do, and above all never refunded as a stray while its escrow stays funded.
    if row["payment_gateway_payment_id"] == payment_id:
        return load_order(row), "already_funded"
    if (amount is None or amount == row["amount"]) and row["status"] == "pending_payment":
        order = await transition(conn, str(row["id"]), "fund", actor_id, payment_id=payment_id)
        return order, "funded"
    await _refund_stray(conn, row, payment_id, amount or row["amount"], gateway)
    return load_order(row), "stray_refunded"


async def _refund_stray(
    conn: Conn, row: asyncpg.Record, payment_id: str, amount: int, gateway: Gateway
) -> None:
    """Send back a payment that cannot fund its order; booked clearing -> escrow -> clearing so the
    ledger shows the money came and went. Once per payment id."""
    order_id, currency = str(row["id"]), row["currency"]
    done = await conn.fetchval(
        "SELECT 1 FROM ledger_transfers WHERE kind = 'stray_payment' AND reference = $1", payment_id
    )
    if done:
        return
    log.error(
        "refunding a payment that cannot fund its order", extra={"order": order_id, "payment": payment_id}
    )
    try:
        # Once per payment at the gateway too: a refund made by an attempt whose answer was lost
        # (and whose transaction rolled back) is found and used, not repeated.
        result = await refund_once(
            gateway, payment_id=payment_id, amount=amount, receipt=f"s_{payment_id}"[:40]
        )
    except RefundUnconfirmed as exc:
        raise ApiError(
            "bad_gateway",
            f"The refund's outcome could not be confirmed ({exc}); retry: it never refunds twice.",
        ) from None
    except GatewayError as exc:
        raise ApiError("bad_gateway", f"The payment gateway refused a refund ({exc}); retry.") from None
    escrow, clearing = ledger.escrow_account(order_id), ledger.platform_account("clearing", currency)
    for debit, credit, kind in ((clearing, escrow, "stray_payment"), (escrow, clearing, "stray_refund")):
        await ledger.transfer(
            conn, debit=debit, credit=credit, amount=amount, currency=currency, kind=kind,
            reference=payment_id, order_id=order_id,
        )  # fmt: skip
    await conn.execute(
        "INSERT INTO order_events (order_id, action, actor_id, previous_status, status, escrow_state,"
        " details) VALUES ($1, 'stray_refund', NULL, $2, $2, $3, $4)",
        row["id"],
        row["status"],
        row["escrow_state"],
        {"paymentId": payment_id, "amount": amount, "refundId": result.id},
    )
    # Recorded like an order's refund, so a later refund.failed is retried (domain/refunds.py).
    await conn.execute(
        "INSERT INTO gateway_refunds (order_id, payment_id, gateway_refund_id, amount, currency, status,"
        " kind) VALUES ($1, $2, $3, $4, $5, $6, 'stray')",
        row["id"],
        payment_id,
        result.id,
        amount,
        currency,
        "processed" if result.status == "processed" else "initiated",
    )
    if result.status == "failed":  # failed at once: recorded, owed and retried (domain/refunds.py)
        await refunds.mark_failed(conn, result.id, "the gateway failed the refund at once")
        return
    await notices.refund_processed(conn, row, amount)


@routes.post(
    "/api/payments/create-order",
    summary="Client: the gateway order to pay an order's escrow (created once per order)",
    description="403 (details.reason phone_unverified) until the client has verified a phone.",
    auth=True,
    body=PayInput,
    response=Checkout,
    parameters=(PARAMETER,),
    errors=(403, 404, 409, 422, 502),
)
async def create_order(request: web.Request, body: PayInput) -> web.Response:
    """Client of a pending_payment order: the gateway order to pay (created once, then returned again)."""
    claims = require_user(request)
    order_id = body.order_id
    settings = request.app[SETTINGS]

    async def run() -> web.Response:
        async with request.app[POOL].acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM orders WHERE id = $1 FOR UPDATE", order_id)
            if row is None or claims.user_id not in (str(row["client_id"]), str(row["doer_id"])):
                raise ApiError("not_found", f"No order {order_id} of yours.")
            if claims.user_id != str(row["client_id"]):
                raise ApiError("forbidden", "Only the order's client pays for it.")
            await require_account(conn, claims.user_id, profile=False, phone=True)
            gateway_order_id = row["payment_gateway_order_id"]
            if gateway_order_id is None:
                if row["status"] != "pending_payment":
                    raise ApiError(
                        "conflict",
                        f"An order in status {row['status']} takes no payment.",
                        details={"status": row["status"], "escrowState": row["escrow_state"]},
                    )
                gateway = gateway_for(settings)
                try:
                    created = await gateway.create_order(
                        amount=row["amount"],
                        currency=row["currency"],
                        receipt=f"o_{row['id'].hex}",
                        notes={"orderId": order_id},
                    )
                except GatewayError as exc:
                    raise ApiError("bad_gateway", f"The payment gateway failed ({exc}); try again.") from None
                gateway_order_id = created.id
                await conn.execute(
                    "UPDATE orders SET payment_gateway_order_id = $2, updated_at = now() WHERE id = $1",
                    row["id"],
                    gateway_order_id,
                )
        return ok(
            Checkout(
                key_id=settings.razorpay_key_id,
                gateway_order_id=gateway_order_id,
                amount=row["amount"],
                currency=row["currency"],
                order_id=order_id,
                status=row["status"],
            )
        )

    return await idempotent(request, claims.user_id, run)


@routes.post(
    "/api/payments/verify",
    summary="Client: verify the checkout's signature and fund the order's escrow",
    auth=True,
    body=CheckoutResult,
    response=Order,
    parameters=(PARAMETER,),
    errors=(404, 409, 422, 502),
)
async def verify(request: web.Request, body: CheckoutResult) -> web.Response:
    """The checkout's answer: signature checked with the key secret against the gateway order id we
    stored for one of the caller's orders; funds the order (once, whoever comes first)."""
    claims = require_user(request)
    gateway_order_id, payment_id = body.razorpay_order_id, body.razorpay_payment_id
    signature = body.razorpay_signature
    settings = request.app[SETTINGS]

    async def run() -> web.Response:
        async with request.app[POOL].acquire() as conn, conn.transaction():
            stored = await conn.fetchval(
                "SELECT payment_gateway_order_id FROM orders WHERE payment_gateway_order_id = $1"
                " AND client_id = $2",
                gateway_order_id,
                claims.user_id,
            )
            if stored is None:
                raise ApiError("not_found", "No order of yours has this gateway order id.")
            expected = checkout_signature(settings.razorpay_key_secret, stored, payment_id)
            if not signature_ok(expected, signature):
                raise ApiError("bad_request", "The payment signature does not match; nothing was changed.")
            order, outcome = await fund_order(
                conn,
                gateway_order_id=stored,
                payment_id=payment_id,
                actor_id=claims.user_id,
                gateway=gateway_for(settings),
            )
        if outcome not in ("funded", "already_funded"):
            raise ApiError(
                "conflict",
                "This payment cannot fund the order (it no longer awaits a payment); it was refunded.",
                details={"reason": outcome},
            )
        return ok(order)

    return await idempotent(request, claims.user_id, run)


@routes.post(
    "/api/dev/sandbox/checkout",
    summary="Dev only: complete a sandbox checkout (404 in production)",
    auth=True,
    body=SandboxCheckoutInput,
    parse=False,  # a production server answers 404 before looking at the caller or the body
    response=CheckoutResult,
    errors=(400, 404),
)
async def sandbox_checkout(request: web.Request) -> web.Response:
    """Dev only (sandbox gateway): complete the checkout of a gateway order the caller's order holds and
    return what the checkout SDK would hand the client. 404 in production or with a real gateway."""
    settings = request.app[SETTINGS]
    if not settings.is_dev or settings.payment_gateway != "sandbox":
        raise ApiError("not_found", f"No route POST {request.path}; see /api/docs for the routes.")
    claims = require_user(request)
    gateway_order_id = (await read_body(request, SandboxCheckoutInput)).gateway_order_id
    found = await request.app[POOL].fetchval(
        "SELECT 1 FROM orders WHERE payment_gateway_order_id = $1 AND client_id = $2",
        gateway_order_id,
        claims.user_id,
    )
    if found is None:
        raise ApiError("not_found", "No order of yours has this gateway order id; call create-order first.")
    return ok(msgspec.convert(SandboxGateway(settings).checkout(gateway_order_id), CheckoutResult))
