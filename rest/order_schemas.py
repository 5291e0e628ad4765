"""The REST shapes of orders: the Order JSON Schema, the bodies of POST /api/orders/{id}/<action>
and their validation (domain/order_states.py holds the state machine and the Order JSON itself)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from domain.order_states import ESCROW_STATES, STATUSES
from rest.http import Fields

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
