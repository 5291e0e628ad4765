"""Payouts of withdrawals: asking the gateway to pay one out, and moving a withdrawal forward to
what the gateway says of its payout (from the request's answer, a webhook or the payout sweep).

A payout that fails or is reversed is undone by a new transfer payouts -> wallet (never by editing
the withdrawal's debit), applied once whatever repeats: statuses only move forward."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from domain import ledger, notices
from domain.gateway import Gateway, GatewayError

if TYPE_CHECKING:
    from hub.db import Conn

log = logging.getLogger("gigwire.wallet")

# status -> the statuses it may move to (forward only; failed and reversed are final).
_FORWARD = {
    "pending": {"processing", "processed", "failed", "reversed"},
    "processing": {"processed", "failed", "reversed"},
    "processed": {"reversed"},
    "failed": set(),
    "reversed": set(),
}
_GATEWAY_STATUS = {
    "queued": "processing",
    "pending": "processing",
    "processing": "processing",
    "processed": "processed",
    "failed": "failed",
    "rejected": "failed",
    "cancelled": "failed",
    "reversed": "reversed",
}


async def settle_withdrawal(
    conn: Conn,
    *,
    payout_id: str | None,
    reference: str | None,
    gateway_status: str,
    reason: str | None = None,
) -> str:
    """Move a withdrawal forward to what the gateway says of its payout (found by payout id, else by
    our reference = the withdrawal id), inside the caller's transaction; a failed or reversed payout
    returns the money to the wallet by a new transfer. The user hears of a paid, failed or reversed
    payout (domain/notices.py), once: statuses only move forward. Returns the outcome ("unknown",
    "stale" when the state would move backward or not at all, or the new status)."""
    status = _GATEWAY_STATUS.get(gateway_status)
    row = None
    if payout_id:
        row = await conn.fetchrow("SELECT * FROM withdrawals WHERE payout_id = $1 FOR UPDATE", payout_id)
    if row is None and reference:
        try:
            row = await conn.fetchrow(
                "SELECT * FROM withdrawals WHERE id = $1 FOR UPDATE", str(uuid.UUID(reference))
            )
        except ValueError:
            row = None
    if row is None or status is None:
        return "unknown"
    if status not in _FORWARD[row["status"]]:
        return "stale"
    await conn.execute(
        "UPDATE withdrawals SET status = $2, payout_id = COALESCE(payout_id, $3), failure_reason = $4,"
        " updated_at = now() WHERE id = $1",
        row["id"],
        status,
        payout_id,
        reason,
    )
    if status in ("failed", "reversed"):
        currency = row["currency"]
        await ledger.transfer(
            conn,
            debit=ledger.platform_account("payouts", currency),
            credit=ledger.wallet_account(str(row["user_id"]), currency),
            amount=row["amount"],
            currency=currency,
            kind="payout_reversal",
            reference=str(row["id"]),
        )
    await notices.withdrawal_settled(conn, row, status, reason)
    return status


@dataclass(frozen=True)
class PayoutOutcome:
    """What a payout request got: the gateway's status ("" when the outcome is unknown), its payout
    id when it answered, and the reason of a failure."""

    gateway_status: str
    payout_id: str | None = None
    reason: str | None = None


async def request_payout(
    gateway: Gateway, *, withdrawal_id: str, fund_account_id: str, amount: int, currency: str
) -> PayoutOutcome:
    """Ask the gateway to pay a withdrawal out (idempotent on the withdrawal id, so asking again
    never pays twice). Never raises GatewayError: a refusal is a "failed" outcome, no definite
    answer (timeout, 5xx, connection lost) an unknown one."""
    try:
        result = await gateway.payout(
            fund_account_id=fund_account_id, amount=amount, currency=currency, reference=withdrawal_id
        )
    except GatewayError as exc:
        log.warning("payout request failed", extra={"withdrawal": withdrawal_id, "definite": exc.definite})
        return PayoutOutcome("failed" if exc.definite else "", reason=str(exc))
    return PayoutOutcome(result.status, payout_id=result.id)


async def record_payout(conn: Conn, withdrawal_id: str, outcome: PayoutOutcome) -> str:
    """Apply a payout request's definite outcome to its withdrawal inside the caller's transaction
    (settle_withdrawal, then remember the payout id); "unknown" for an unknown outcome."""
    if not outcome.gateway_status:
        return "unknown"
    result = await settle_withdrawal(
        conn,
        payout_id=outcome.payout_id,
        reference=withdrawal_id,
        gateway_status=outcome.gateway_status,
        reason=outcome.reason,
    )
    if outcome.payout_id is not None:
        await conn.execute(
            "UPDATE withdrawals SET payout_id = $2 WHERE id = $1 AND payout_id IS NULL",
            withdrawal_id,
            outcome.payout_id,
        )
    return result
