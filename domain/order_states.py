"""The order state machine as data, and the Order JSON.

Statuses (seeds/004 4.1): pending_payment -> in_progress -> submitted -> completed, with
request_revision (submitted -> in_progress), dispute (in_progress|submitted -> disputed), resolve by
an admin (disputed -> completed or cancelled), cancel (pending_payment|in_progress -> cancelled).

"approved" vs "completed": approval releases the escrow at once (escrow -> doer wallet, fee ->
platform revenue) in the same transaction, so the order goes straight to `completed` with
escrowState `released`. `approved` stays a legal value of the column but no transition produces it:
money in the wallet is the doer's, and withdrawing it is the wallet's concern, not the order's.

Escrow effects: `fund` moves gateway clearing -> escrow; `release` escrow -> doer wallet and fee;
`refund` escrow -> gateway clearing, with a refund sent through the gateway. The REST side of orders
(the Order schema, action bodies and their validation) is rest/order_schemas.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from hub.clock import epoch_ms

Role = Literal["client", "doer", "admin", "system"]
Effect = Literal["fund", "release", "refund"] | None

STATUSES = ("pending_payment", "in_progress", "submitted", "approved", "completed", "disputed", "cancelled")
ESCROW_STATES = ("awaiting_payment", "funded", "released", "refunded")


@dataclass(frozen=True)
class Move:
    """One legal transition: who may make it, where it goes, and what it does to the escrow."""

    roles: frozenset[Role]
    status: str
    effect: Effect = None


def _r(*roles: Role) -> frozenset[Role]:
    return frozenset(roles)


# (current status, action) -> Move. Anything absent is illegal (409 with the current state).
# `fund` is made by the payments code only (checkout verify by the client, or a webhook: system);
# `expire` and the automatic `approve` by the timers (system).
TABLE: dict[tuple[str, str], Move] = {
    ("pending_payment", "fund"): Move(_r("client", "system"), "in_progress", "fund"),
    ("pending_payment", "cancel"): Move(_r("client", "doer"), "cancelled"),
    ("pending_payment", "expire"): Move(_r("system"), "cancelled"),
    ("in_progress", "submit"): Move(_r("doer"), "submitted"),
    ("in_progress", "cancel"): Move(_r("client", "doer"), "cancelled", "refund"),
    ("in_progress", "dispute"): Move(_r("client", "doer"), "disputed"),
    ("submitted", "approve"): Move(_r("client", "system"), "completed", "release"),
    ("submitted", "request_revision"): Move(_r("client"), "in_progress"),
    ("submitted", "dispute"): Move(_r("client", "doer"), "disputed"),
    ("disputed", "resolve_release"): Move(_r("admin"), "completed", "release"),
    ("disputed", "resolve_refund"): Move(_r("admin"), "cancelled", "refund"),
}

ACTIONS: tuple[str, ...] = tuple(dict.fromkeys(action for _, action in TABLE))
# Who may ever make each action, whatever the state: a caller outside this set gets 403, not 409.
ACTION_ROLES: dict[str, frozenset[Role]] = {
    action: frozenset().union(*(m.roles for (_, a), m in TABLE.items() if a == action)) for action in ACTIONS
}

ESCROW_AFTER: dict[Effect, str | None] = {
    "fund": "funded",
    "release": "released",
    "refund": "refunded",
    None: None,
}


def order_json(row: Any) -> dict[str, Any]:
    """The Order model of seeds/004 4.1 (camelCase, times in epoch ms, optional fields null) plus
    currency, updatedAt and dispute, from an orders row."""
    return {
        "id": str(row["id"]),
        "gigId": str(row["gig_id"]),
        "applicationId": str(row["application_id"]),
        "clientId": str(row["client_id"]),
        "doerId": str(row["doer_id"]),
        "amount": row["amount"],
        "platformFee": row["platform_fee"],
        "doerPayout": row["doer_payout"],
        "currency": row["currency"],
        "escrowState": row["escrow_state"],
        "paymentGatewayOrderId": row["payment_gateway_order_id"],
        "paymentGatewayPaymentId": row["payment_gateway_payment_id"],
        "status": row["status"],
        "deliverables": row["deliverables"] or [],
        "revisionRequests": row["revision_requests"] or [],
        "dispute": row["dispute"],
        "createdAt": epoch_ms(row["created_at"]),
        "updatedAt": epoch_ms(row["updated_at"]),
        "startedAt": epoch_ms(row["started_at"]),
        "submittedAt": epoch_ms(row["submitted_at"]),
        "completedAt": epoch_ms(row["completed_at"]),
    }
