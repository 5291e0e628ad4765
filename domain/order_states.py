"""The order state machine as data, and the Order model (what every order route answers).

Statuses (seeds/004 4.1): pending_payment -> in_progress -> submitted -> completed, with
request_revision (submitted -> in_progress), dispute (in_progress|submitted -> disputed), resolve by
an admin (disputed -> completed by release or split, or cancelled by refund), cancel
(pending_payment|in_progress -> cancelled).

"approved" vs "completed": approval releases the escrow at once (escrow -> doer wallet, fee ->
platform revenue) in the same transaction, so the order goes straight to `completed` with
escrowState `released`. `approved` stays a legal value of the column but no transition produces it:
money in the wallet is the doer's, and withdrawing it is the wallet's concern, not the order's.

Escrow effects: `fund` moves gateway clearing -> escrow; `release` escrow -> doer wallet and fee;
`refund` escrow -> gateway clearing, with a refund sent through the gateway; `split` (an admin's
dispute resolution) both: the doer's share of the amount released (less the fee in the order's
proportion), the rest refunded. The REST side of orders
(the action bodies and their validation) is rest/orders.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

import msgspec

from hub.model import EpochMs, Uuid, Wire, load

Role = Literal["client", "doer", "admin", "system"]
Effect = Literal["fund", "release", "refund", "split"] | None
OrderStatus = Literal[
    "pending_payment", "in_progress", "submitted", "approved", "completed", "disputed", "cancelled"
]
EscrowState = Literal["awaiting_payment", "funded", "released", "refunded"]

STATUSES: tuple[str, ...] = get_args(OrderStatus)
ESCROW_STATES: tuple[str, ...] = get_args(EscrowState)


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
    ("disputed", "resolve_split"): Move(_r("admin"), "completed", "split"),
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
    "split": "released",  # the escrow is emptied, part to the doer, part back to the client
    None: None,
}


class Deliverable(Wire, kw_only=True):
    """One delivered item: what the doer sent, the submission round it came in and when."""

    url: str
    description: str | msgspec.UnsetType = msgspec.UNSET
    """Absent when the doer gave none."""
    round: Annotated[int, msgspec.Meta(ge=1)]
    submitted_at: EpochMs


class RevisionRequest(Wire):
    """The client's request for changes to a submission."""

    reason: str
    requested_at: EpochMs
    requested_by: Uuid


_Share = Annotated[int, msgspec.Meta(ge=1, description="paise")]


class Dispute(Wire, kw_only=True):
    """An opened dispute; the resolution fields appear once an admin resolves it."""

    reason: str
    opened_by: Uuid
    opened_at: EpochMs
    previous_status: OrderStatus
    outcome: Literal["release", "refund", "split"] | msgspec.UnsetType = msgspec.UNSET
    doer_amount: _Share | msgspec.UnsetType = msgspec.UNSET
    """split: paise of the order's amount awarded to the doer (the fee taken from it pro rata)."""
    refund_amount: _Share | msgspec.UnsetType = msgspec.UNSET
    """split: paise refunded to the client."""
    note: str | msgspec.UnsetType | None = msgspec.UNSET
    resolved_by: Uuid | msgspec.UnsetType = msgspec.UNSET
    resolved_at: EpochMs | msgspec.UnsetType = msgspec.UNSET


class Order(Wire):
    """The Order of seeds/004 4.1 (optional fields null) plus currency, updatedAt and dispute."""

    id: Uuid
    gig_id: Uuid
    application_id: Uuid
    client_id: Uuid
    doer_id: Uuid
    amount: Annotated[int, msgspec.Meta(ge=1, description="paise")]
    platform_fee: Annotated[int, msgspec.Meta(ge=0, description="paise")]
    doer_payout: Annotated[int, msgspec.Meta(ge=0, description="paise")]
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
    escrow_state: EscrowState
    payment_gateway_order_id: str | None
    payment_gateway_payment_id: str | None
    status: OrderStatus
    deliverables: list[Deliverable]
    revision_requests: list[RevisionRequest]
    dispute: Dispute | None
    created_at: EpochMs
    updated_at: EpochMs
    started_at: EpochMs | None
    submitted_at: EpochMs | None
    completed_at: EpochMs | None


def load_order(row: Mapping[str, Any]) -> Order:
    """The Order of an orders row (SELECT * or RETURNING *)."""
    return load(Order, row)
