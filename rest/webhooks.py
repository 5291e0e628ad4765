"""POST /api/webhooks/payment: Razorpay's events, each applied at most once.

The body's HMAC-SHA256 with the webhook secret must equal `X-Razorpay-Signature` (constant-time).
The event id (`X-Razorpay-Event-Id`, else a hash of the body) is inserted into gateway_events in
the same transaction as the event's effect: a repeat, even a concurrent one, waits on that row and
then finds it, so nothing is applied twice. Effects only move state forward, so events may arrive
in any order. Unknown events are answered 200 and recorded as ignored."""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

import msgspec
import orjson
from aiohttp import web

from domain import refunds
from domain.gateway import Gateway, signature_ok, webhook_signature
from domain.gateways import gateway_for
from domain.payouts import settle_withdrawal
from hub.keys import POOL, SETTINGS
from rest.api import Routes, Wire, ok
from rest.bank_accounts import settle_validation
from rest.errors import ApiError
from rest.payments import fund_order

if TYPE_CHECKING:
    from hub.db import Conn

log = logging.getLogger("gigwire.webhooks")
routes = Routes("payments")


class GatewayEvent(msgspec.Struct):
    """A gateway event as Razorpay sends it (only `event` is read before dispatching on it)."""

    event: str


class WebhookOutcome(Wire):
    """What became of an event: its id and outcome ("duplicate" when it was applied before)."""

    event_id: str
    outcome: str


def _has_nul(value: Any) -> bool:
    """Whether any key or string inside a parsed JSON value holds NUL (iterative: any depth)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _entity(event: dict[str, Any], name: str) -> dict[str, Any]:
    payload = event.get("payload")
    node = payload.get(name) if isinstance(payload, dict) else None
    entity = node.get("entity") if isinstance(node, dict) else None
    return entity if isinstance(entity, dict) else {}


async def apply_event(conn: Conn, event_type: str, event: dict[str, Any], gateway: Gateway) -> str:
    """Apply one verified event inside the caller's transaction; return its outcome. `gateway`
    refunds a payment that cannot fund its order (see rest.payments.fund_order)."""
    if event_type in ("payment.captured", "order.paid"):
        payment = _entity(event, "payment")
        order_id = payment.get("order_id") or _entity(event, "order").get("id")
        amount = payment.get("amount")
        if not isinstance(order_id, str) or not isinstance(payment.get("id"), str):
            return "malformed"
        _, outcome = await fund_order(
            conn,
            gateway_order_id=order_id,
            payment_id=payment["id"],
            actor_id=None,
            gateway=gateway,
            amount=amount if isinstance(amount, int) else None,
        )
        return outcome
    if event_type in ("refund.processed", "refund.failed"):
        return await _refund_event(conn, event_type, _entity(event, "refund"))
    if event_type in ("payout.processed", "payout.failed", "payout.reversed"):
        payout = _entity(event, "payout")
        reason = payout.get("failure_reason") or (payout.get("status_details") or {}).get("description")
        return await settle_withdrawal(
            conn,
            payout_id=str(payout.get("id") or "") or None,
            reference=str(payout.get("reference_id") or "") or None,
            gateway_status=event_type.removeprefix("payout."),
            reason=str(reason) if reason else None,
        )
    if event_type in ("fund_account.validation.completed", "fund_account.validation.failed"):
        validation = _entity(event, "fund_account.validation")
        fund_account = (validation.get("fund_account") or {}).get("id")
        results = validation.get("results") or {}
        if not isinstance(fund_account, str):
            return "malformed"
        active = event_type.endswith("completed") and results.get("account_status") == "active"
        return await settle_validation(
            conn, fund_account_id=fund_account, validation_id=str(validation.get("id")), active=active
        )
    return "ignored"


async def _refund_event(conn: Conn, event_type: str, refund: dict[str, Any]) -> str:
    """refund.processed / refund.failed of one of our refunds (domain/refunds.py); "stale" when it
    is no row's current refund or that row already shows it."""
    processed = event_type == "refund.processed"
    refund_id, payment_id = refund.get("id"), refund.get("payment_id")
    if not isinstance(refund_id, str):
        return "malformed"
    details = refund.get("status_details")
    reason = refund.get("failure_reason") or (
        details.get("description") if isinstance(details, dict) else None
    )
    failure = str(reason) if reason else None

    async def apply() -> bool:
        if processed:
            return await refunds.mark_processed(conn, refund_id)
        return await refunds.mark_failed(conn, refund_id, failure)

    done = await apply()
    # The cancel or retry that made this refund may not have committed its row yet (each holds a
    # row locked from before the refund until its commit, and its own catch-up check ran before
    # this event was recorded): wait on those locks, then look once more.
    if not done and isinstance(payment_id, str) and await refunds.lock_for_payment(conn, payment_id):
        done = await apply()
    if not done:
        return "stale"
    return "refund_processed" if processed else "refund_failed"


@routes.post(
    "/api/webhooks/payment",
    summary="Payment gateway events (Razorpay format), signed with X-Razorpay-Signature",
    description="payment.captured / order.paid fund the order; refund.processed, refund.failed (the"
    " refund is retried by the timers, the money owed to the client meanwhile); payout.processed,"
    " payout.failed, payout.reversed; fund_account.validation.*. Each event is applied once (by"
    " X-Razorpay-Event-Id, else a hash of the body); others are answered 200 and ignored.",
    body=GatewayEvent,
    parse=False,  # the signature is checked over the raw bytes before they are parsed
    response=WebhookOutcome,
    parameters=(
        {"name": "X-Razorpay-Signature", "in": "header", "required": True, "schema": {"type": "string"}},
        {"name": "X-Razorpay-Event-Id", "in": "header", "required": False, "schema": {"type": "string"}},
    ),
    errors=(502, 503),
)
async def payment_webhook(request: web.Request) -> web.Response:
    """Verify, deduplicate and apply one gateway event; answer quickly with its outcome."""
    settings = request.app[SETTINGS]
    raw = await request.read()
    if not settings.razorpay_webhook_secret:
        raise ApiError("unavailable", "Webhooks are off: RAZORPAY_WEBHOOK_SECRET is not set.")
    given = request.headers.get("X-Razorpay-Signature", "")
    if not given or not signature_ok(webhook_signature(settings.razorpay_webhook_secret, raw), given):
        raise ApiError("bad_request", "The X-Razorpay-Signature does not match the body.")
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError("bad_request", "The body is not valid JSON.") from None
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        raise ApiError("bad_request", "The body is not a gateway event (no 'event').")
    if _has_nul(event):  # jsonb (gateway_events.payload) and text cannot hold it
        raise ApiError("bad_request", "The body holds a NUL character.")
    event_type: str = event["event"]
    header_id = request.headers.get("X-Razorpay-Event-Id", "").strip()
    event_id = header_id[:200] if header_id else "sha256:" + hashlib.sha256(raw).hexdigest()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        fresh = await conn.fetchval(
            "INSERT INTO gateway_events (event_id, event_type, payload, outcome) VALUES ($1, $2, $3, '')"
            " ON CONFLICT (event_id) DO NOTHING RETURNING true",
            event_id,
            event_type,
            event,
        )
        if not fresh:
            return ok(WebhookOutcome(event_id=event_id, outcome="duplicate"))
        outcome = await apply_event(conn, event_type, event, gateway_for(settings))
        await conn.execute("UPDATE gateway_events SET outcome = $2 WHERE event_id = $1", event_id, outcome)
    log.info("gateway event", extra={"event": event_type, "event_id": event_id, "outcome": outcome})
    return ok(WebhookOutcome(event_id=event_id, outcome=outcome))
