"""The order state machine as data, and the Order JSON.

Statuses (seeds/004 4.1): pending_payment -> in_progress -> submitted -> completed, with
request_revision (submitted -> in_progress), dispute (in_progress|submitted -> disputed), resolve by
an admin (disputed -> completed or cancelled), cancel (pending_payment|in_progress -> cancelled).

"approved" vs "completed": approval releases the escrow at once (escrow -> doer wallet, fee ->
platform revenue) in the same transaction, so the order goes straight to `completed` with
escrowState `released`. `approved` stays a legal value of the column but no transition produces it:
money in the wallet is the doer's, and withdrawing it is the wallet's concern, not the order's.

Escrow effects: `fund` moves gateway clearing -> escrow; `release` escrow -> doer wallet and fee;
`refund` escrow -> gateway clearing, with a refund sent through the gateway."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rest.http import Fields

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


def ms(value: dt.datetime | None) -> int | None:
    """A timestamp as epoch milliseconds (None stays None)."""
    return None if value is None else int(value.timestamp() * 1000)


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
        "createdAt": ms(row["created_at"]),
        "updatedAt": ms(row["updated_at"]),
        "startedAt": ms(row["started_at"]),
        "submittedAt": ms(row["submitted_at"]),
        "completedAt": ms(row["completed_at"]),
    }


_NULLABLE_INT: dict[str, Any] = {"type": ["integer", "null"]}
_NULLABLE_STR: dict[str, Any] = {"type": ["string", "null"]}

DELIVERABLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "minLength": 1, "maxLength": 2048},
        "description": {"type": "string", "maxLength": 2000},
        "round": {"type": "integer"},
        "submittedAt": {"type": "integer"},
    },
}

ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "id",
        "gigId",
        "clientId",
        "doerId",
        "amount",
        "platformFee",
        "doerPayout",
        "currency",
        "escrowState",
        "status",
        "deliverables",
        "revisionRequests",
        "createdAt",
        "updatedAt",
    ],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "gigId": {"type": "string", "format": "uuid"},
        "applicationId": {"type": "string", "format": "uuid"},
        "clientId": {"type": "string", "format": "uuid"},
        "doerId": {"type": "string", "format": "uuid"},
        "amount": {"type": "integer", "minimum": 1},
        "platformFee": {"type": "integer", "minimum": 0},
        "doerPayout": {"type": "integer", "minimum": 0},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "escrowState": {"enum": list(ESCROW_STATES)},
        "paymentGatewayOrderId": _NULLABLE_STR,
        "paymentGatewayPaymentId": _NULLABLE_STR,
        "status": {"enum": list(STATUSES)},
        "deliverables": {"type": "array", "items": DELIVERABLE_SCHEMA},
        "revisionRequests": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "reason": {"type": "string"},
                    "requestedAt": {"type": "integer"},
                    "requestedBy": {"type": "string"},
                },
            },
        },
        "dispute": {"type": ["object", "null"]},
        "createdAt": {"type": "integer"},
        "updatedAt": {"type": "integer"},
        "startedAt": _NULLABLE_INT,
        "submittedAt": _NULLABLE_INT,
        "completedAt": _NULLABLE_INT,
    },
}


def parse_action_body(action: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the JSON body of POST /api/orders/{id}/<action>; return transition() arguments, or
    raise ApiError bad_request naming every bad field."""
    f = Fields(body)
    args: dict[str, Any] = {}
    if action == "submit":
        f.unknown(["deliverables"])
        items = body.get("deliverables")
        if not isinstance(items, list) or not 1 <= len(items) <= 20:
            f.errors["deliverables"] = "must be a list of 1 to 20 {url, description?} objects"
        else:
            clean: list[dict[str, str]] = []
            for item in items:
                g = Fields(item if isinstance(item, dict) else {})
                url = g.text("url", max_len=2048, pattern=_URL)
                description = g.text("description", required=False, max_len=2000)
                g.unknown(["url", "description"])
                if g.errors or not isinstance(item, dict):
                    f.errors["deliverables"] = "each item is {url: http(s) URL, description?: text}"
                    break
                clean.append({"url": url, **({"description": description} if description else {})})
            args["deliverables"] = clean
    elif action in ("request_revision", "dispute"):
        f.unknown(["reason"])
        args["reason"] = f.text("reason", max_len=2000)
    elif action == "cancel":
        f.unknown(["reason"])
        args["reason"] = f.text("reason", required=False, max_len=2000)
    elif action == "resolve":
        f.unknown(["outcome", "note"])
        args["outcome"] = f.text("outcome", choices=("release", "refund"))
        args["note"] = f.text("note", required=False, max_len=2000)
    else:
        f.unknown([])
    for name, value in args.items():
        texts = [v for d in value for v in d.values()] if isinstance(value, list) else [value]
        if any(isinstance(t, str) and has_control(t) for t in texts):
            f.errors[name] = "must not contain control characters"
    f.check()
    return args


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def has_control(text: str) -> bool:
    """True when `text` holds a control character other than tab and newlines (PostgreSQL refuses
    NUL, and none of them belongs in a name, reason or URL)."""
    return _CONTROL.search(text) is not None


_URL = re.compile(r"https?://[^\s]{1,2040}")

ACTION_BODIES: dict[str, dict[str, Any]] = {
    "submit": {
        "type": "object",
        "required": ["deliverables"],
        "additionalProperties": False,
        "properties": {
            "deliverables": {
                "type": "array",
                "minItems": 1,
                "maxItems": 20,
                "items": {
                    "type": "object",
                    "required": ["url"],
                    "additionalProperties": False,
                    "properties": {
                        "url": {"type": "string", "pattern": "^https?://\\S+$", "maxLength": 2048},
                        "description": {"type": "string", "maxLength": 2000},
                    },
                },
            }
        },
    },
    "request_revision": {
        "type": "object",
        "required": ["reason"],
        "additionalProperties": False,
        "properties": {"reason": {"type": "string", "pattern": "\\S", "maxLength": 2000}},
    },
    "dispute": {
        "type": "object",
        "required": ["reason"],
        "additionalProperties": False,
        "properties": {"reason": {"type": "string", "pattern": "\\S", "maxLength": 2000}},
    },
    "cancel": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"reason": {"type": "string", "maxLength": 2000}},
    },
    "resolve": {
        "type": "object",
        "required": ["outcome"],
        "additionalProperties": False,
        "properties": {
            "outcome": {"enum": ["release", "refund"]},
            "note": {"type": "string", "maxLength": 2000},
        },
    },
    "approve": {"type": "object", "additionalProperties": False, "properties": {}},
}
