"""A refund after the cancellation that made it: the gateway's last word on it (processed or
failed), the retry of a failed one, and where the money is meanwhile.

One gateway_refunds row per refunded order (kind `order`: domain.orders._refund makes it, with the
first request) and per stray payment sent back (kind `stray`: rest.payments._refund_stray). Its
`gateway_refund_id` is the refund the gateway holds for it now; its status moves:

- initiated -> processed: refund.processed.
- initiated or processed -> failed, owed: refund.failed of the current refund; the money is booked
  gateway clearing -> refunds_pending and the client is told (once per owed cycle).
- failed or needs_attention -> initiated (still owed) or processed: a retry the gateway accepted,
  which becomes the current refund; once processed, refunds_pending -> clearing (owed no more).
- failed -> needs_attention (still owed): REFUND_MAX_ATTEMPTS requests made (the timers count it).

While `owed`, the money is in platform:refunds_pending:<CUR>: the ledger says the platform owes it
to the client (gateway clearing no longer counts it as given back). Each booking's reference is the
refund row's id and the owed cycle, so a repeat cannot post twice; the row lock serializes everything.
A retry goes through domain.gateway.refund_once: it lists the payment's refunds first and uses a
refund the gateway already holds (one whose answer was lost), so a timeout, a 5xx or a doubled
answer never refunds twice. A refund left `initiated` (no webhook came) is looked up at the gateway
by the timers (`reconcile`), so a lost refund.failed is not a refund forgotten. Callers:
rest/webhooks.py (the events), workers/timers.py (the retry sweep, the escalation, the look-up),
rest/admin_refunds.py (the list and a retry now)."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

import asyncpg

from domain import ledger, notices
from domain.gateway import Gateway, GatewayError, GatewayResult, RefundUnconfirmed, refund_once

if TYPE_CHECKING:
    from hub.db import Conn

log = logging.getLogger("gigwire.refunds")

__all__ = [
    "RETRYABLE",
    "escalate",
    "lock_for_payment",
    "mark_failed",
    "mark_processed",
    "receipt",
    "reconcile",
    "retry",
]

RETRYABLE = ("failed", "needs_attention")
"""The statuses a retry starts from (the timers take `failed`; an admin either)."""


def receipt(refund_id: str, attempt: int) -> str:
    """The receipt of a refund request: the row and the attempt (Razorpay allows 40 characters)."""
    return f"rf_{uuid.UUID(refund_id).hex}_{attempt}"


async def _order(conn: Conn, order_id: object) -> asyncpg.Record:
    order: asyncpg.Record | None = await conn.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
    assert order is not None  # gateway_refunds.order_id references orders
    return order


async def _cycle(conn: Conn, row: asyncpg.Record) -> int:
    """How many times this refund was booked as owed (refunds_pending cycles so far)."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM ledger_transfers WHERE order_id = $1 AND kind = 'refund_failed'"
            " AND reference LIKE $2",
            row["order_id"],
            f"{row['id']}:%",
        )
    )


async def _owe(conn: Conn, row: asyncpg.Record) -> None:
    """Book the failed refund's money as owed: clearing -> refunds_pending."""
    currency, order_id = row["currency"], str(row["order_id"])
    await ledger.transfer(
        conn, debit=ledger.platform_account("clearing", currency),
        credit=ledger.platform_account("refunds_pending", currency), amount=row["amount"],
        currency=currency, kind="refund_failed",
        reference=f"{row['id']}:{await _cycle(conn, row) + 1}", order_id=order_id,
    )  # fmt: skip


async def _settle(conn: Conn, row: asyncpg.Record) -> None:
    """A refund of an owed row was processed: refunds_pending -> clearing."""
    currency, order_id = row["currency"], str(row["order_id"])
    await ledger.transfer(
        conn, debit=ledger.platform_account("refunds_pending", currency),
        credit=ledger.platform_account("clearing", currency), amount=row["amount"],
        currency=currency, kind="refund_settled",
        reference=f"{row['id']}:{await _cycle(conn, row)}", order_id=order_id,
    )  # fmt: skip


async def mark_processed(conn: Conn, gateway_refund_id: str) -> bool:
    """The gateway processed `gateway_refund_id`: if it is a row's current refund and not processed
    yet, mark it processed (settling the owed money of an earlier failure) and tell the client;
    whether one was. Inside the caller's transaction."""
    row = await conn.fetchrow(
        "SELECT * FROM gateway_refunds WHERE gateway_refund_id = $1 AND status <> 'processed' FOR UPDATE",
        gateway_refund_id,
    )
    if row is None:
        return False
    await conn.execute(
        "UPDATE gateway_refunds SET status = 'processed', owed = false, updated_at = now() WHERE id = $1",
        row["id"],
    )
    if row["owed"]:
        await _settle(conn, row)
    if row["kind"] == "order" or row["owed"]:  # a stray refund's client was told when it was made
        await notices.refund_processed(conn, await _order(conn, row["order_id"]), row["amount"])
    return True


async def mark_failed(conn: Conn, gateway_refund_id: str, reason: str | None) -> bool:
    """The gateway failed `gateway_refund_id`: if it is a row's current refund and not failed yet,
    mark the row failed (the timers retry it after REFUND_RETRY_AFTER_S), book its money as owed
    (clearing -> refunds_pending) and tell the client, once per owed cycle; whether one was."""
    row = await conn.fetchrow(
        "SELECT * FROM gateway_refunds WHERE gateway_refund_id = $1"
        " AND status IN ('initiated', 'processed') FOR UPDATE",
        gateway_refund_id,
    )
    if row is None:
        return False
    await conn.execute(
        "UPDATE gateway_refunds SET status = 'failed', owed = true, failure_reason = $2, updated_at = now()"
        " WHERE id = $1",
        row["id"],
        (reason or "the gateway failed the refund")[:500],
    )
    if not row["owed"]:
        await _owe(conn, row)
        await notices.refund_failed(conn, await _order(conn, row["order_id"]), row["amount"])
    log.warning(
        "refund failed",
        extra={"refund": str(row["id"]), "order": str(row["order_id"]), "gatewayRefund": gateway_refund_id},
    )
    return True


async def lock_for_payment(conn: Conn, payment_id: str) -> bool:
    """Wait for whatever is making a refund of `payment_id` right now (a cancellation holds the
    order row, a retry the refund row, from before the gateway call until their commit); whether
    there is such an order or refund. A webhook that found no row for its refund calls this, then
    looks again."""
    order = await conn.fetchval(
        "SELECT 1 FROM orders WHERE payment_gateway_payment_id = $1 FOR UPDATE", payment_id
    )
    refunds = await conn.fetch("SELECT 1 FROM gateway_refunds WHERE payment_id = $1 FOR UPDATE", payment_id)
    return bool(order or refunds)


async def _event_seen(conn: Conn, event_type: str, gateway_refund_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM gateway_events WHERE event_type = $1"
            " AND payload #>> '{payload,refund,entity,id}' = $2 LIMIT 1",
            event_type,
            gateway_refund_id,
        )
    )


async def retry(conn: Conn, row: asyncpg.Record, gateway: Gateway) -> str:
    """Ask the gateway again for the refund of `row` (a gateway_refunds row in RETRYABLE, locked by
    the caller's transaction), as attempt `attempts + 1`. Returns "processed" (settled now),
    "initiated" (accepted; its refund.processed settles it), "unknown" (no definite answer and no
    refund visible) or "refused"; on the last two the row keeps its status and counts the attempt."""
    attempt = int(row["attempts"]) + 1
    try:
        result = await refund_once(
            gateway,
            payment_id=row["payment_id"],
            amount=row["amount"],
            receipt=receipt(str(row["id"]), attempt),
        )
    except GatewayError as exc:
        outcome = "unknown" if isinstance(exc, RefundUnconfirmed) else "refused"
        await conn.execute(
            "UPDATE gateway_refunds SET attempts = $2, failure_reason = $3, updated_at = now() WHERE id = $1",
            row["id"],
            attempt,
            f"retry {attempt}: {exc}"[:500],
        )
        log.warning("refund retry got no refund", extra={"refund": str(row["id"]), "outcome": outcome})
        return outcome
    return await _accepted(conn, row, attempt, result)


async def _accepted(conn: Conn, row: asyncpg.Record, attempt: int, result: GatewayResult) -> str:
    """Make `result` the row's current refund; settle it when the gateway says (or said) processed."""
    previous = [*row["previous_refund_ids"]]
    if row["gateway_refund_id"] and row["gateway_refund_id"] != result.id:
        previous.append(row["gateway_refund_id"])
    await conn.execute(
        "UPDATE gateway_refunds SET gateway_refund_id = $2, previous_refund_ids = $3, attempts = $4,"
        " status = 'initiated', updated_at = now() WHERE id = $1",
        row["id"],
        result.id,
        previous,
        attempt,
    )
    # Its webhook may have come before (a refund made by an attempt whose answer was lost).
    if result.status == "processed" or await _event_seen(conn, "refund.processed", result.id):
        await mark_processed(conn, result.id)
        return "processed"
    if result.status == "failed" or await _event_seen(conn, "refund.failed", result.id):
        await mark_failed(conn, result.id, "the gateway failed the retried refund")
        return "refused"
    return "initiated"


async def reconcile(conn: Conn, row: asyncpg.Record, gateway: Gateway) -> str:
    """Ask the gateway what became of the current refund of `row` (an `initiated` row, locked by the
    caller) when no webhook said so: apply processed or failed as the webhook would and return
    that; "pending" when it is still on its way or cannot be seen (the row's updated_at is touched,
    so it is looked at again one period later)."""
    try:
        listed = await gateway.refunds_of(row["payment_id"])
    except GatewayError:
        listed = []
    status = next((r.status for r in listed if r.id == row["gateway_refund_id"]), "pending")
    if status == "processed" and await mark_processed(conn, row["gateway_refund_id"]):
        return "processed"
    if status == "failed" and await mark_failed(
        conn, row["gateway_refund_id"], "the gateway lists it failed"
    ):
        return "failed"
    await conn.execute("UPDATE gateway_refunds SET updated_at = now() WHERE id = $1", row["id"])
    return "pending"


async def escalate(conn: Conn, refund_id: str) -> bool:
    """Hand a failed refund to the admins (status needs_attention; the money stays owed); whether it
    was still failed. The timers call this after REFUND_MAX_ATTEMPTS requests."""
    done = await conn.fetchval(
        "UPDATE gateway_refunds SET status = 'needs_attention', updated_at = now()"
        " WHERE id = $1 AND status = 'failed' RETURNING true",
        refund_id,
    )
    if done:
        log.warning("refund needs attention", extra={"refund": refund_id})
    return bool(done)
