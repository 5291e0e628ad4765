"""Issue 13 defect 5 and its class: every date and number query parameter of every route (read from
the OpenAPI document, so a new one is checked without anyone listing it) answers a value out of
range, of the wrong form, or beyond what Python's int, float and datetime hold, with 400 naming the
parameter, never a 5xx (GET /api/gigs?deadline=9999-12-31 was an OverflowError, my-gigs too)."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

import pytest

from tests.hostile.conftest import LiveServer, World
from tests.hostile.test_rest_pinned import assert_clean, send

NUMBERS = [
    "-1",
    "-0",
    "0",
    "1.5",
    "1e3",
    "1e309",
    "NaN",
    "Infinity",
    "0x10",
    "18446744073709551616",
    "-9223372036854775809",
    "9" * 40,
    "1" * 5000,
    "9999-12-31",
]
DATES = [
    "9999-12-31",
    "10000-01-01",
    "0000-00-00",
    "-0001-01-01",
    "2026-02-30",
    "2026-13-01",
    "2026-1-1",
    "9999-12-31T23:59:59Z",
    "infinity",
    "epoch",
    "tomorrow",
]
GOOD_DATES = ["today", "this_week", "this_month", "0001-01-01", "2030-01-01"]


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


OPAQUE_CURSORS = [
    cursor(f"{10**30}:{uuid.uuid4()}"),
    cursor(f"-{10**30}:{uuid.uuid4()}"),
    cursor(f"{-(2**63)}:{uuid.uuid4()}"),
    cursor(f"1e309:{uuid.uuid4()}"),
    cursor(f"{'9' * 5000}:{uuid.uuid4()}"),
    cursor("0:not-a-uuid"),
    "%ff%fe",
    "!!!",
]


def query_parameters(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(path, name, schema) of every documented query parameter of a GET route."""
    found = []
    for path, operations in document["paths"].items():
        for parameter in operations.get("get", {}).get("parameters", []):
            if parameter.get("in") == "query":
                found.append((path, parameter["name"], parameter.get("schema", {})))
    return found


def target(path: str, world: World) -> str:
    """The path with a live id its owner may read (the world's user owns the gig, is the order's
    client, and is a user)."""
    path = path.replace("/api/users/{id}", f"/api/users/{world.user.id}")
    return path.replace("/api/gigs/{id}", f"/api/gigs/{world.gig_id}").replace("{id}", world.order_id)


def names(body: dict[str, Any], name: str) -> bool:
    error = body["error"]
    return name in error["message"] or (error.get("details") or {}).get("parameter") == name


def test_every_date_and_number_query_parameter_refuses_what_is_out_of_range(
    live: LiveServer, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    document = live.http("GET", b"/api/openapi.json", {}).json()
    checked = []
    for path, name, schema in query_parameters(document):
        if schema.get("type") == "integer":
            low, high = schema.get("minimum", 0), schema.get("maximum", 2**63 - 1)
            cases = [(v, not (re.fullmatch(r"[0-9]{1,30}", v) and low <= int(v) <= high)) for v in NUMBERS]
            cases += [(str(high + 1), True), (str(low - 1), True), (str(high), False)]
        elif name == "deadline":
            cases = [(v, True) for v in DATES] + [(v, False) for v in GOOD_DATES]
        elif name == "cursor":
            cases = [(v, True) for v in OPAQUE_CURSORS]
        else:
            continue
        for value, refused in cases:
            quoted = value if value.startswith("%") else value.replace("+", "%2B")
            caller = world.admin if path.startswith("/api/admin/") else world.user
            reply = send(live, "GET", f"{target(path, world)}?{name}={quoted}".encode(), caller.token)
            assert_clean(reply, caplog)
            where = f"GET {path}?{name}={value[:40]}"
            if refused:
                assert reply.status == 400, (where, reply)
                assert names(reply.json(), name), (where, reply.json())
            else:
                assert reply.status == 200, (where, reply)
            checked.append(where)
    # the families this must reach: gigs and my-gigs' deadline, pages, limits, cursors, beforeSeq
    for expected in ("/api/gigs?deadline", "/api/gigs/my-gigs?deadline", "/api/wallet/transactions?cursor",
                     "/api/notifications?cursor", "/api/orders/{id}/messages?beforeSeq"):  # fmt: skip
        assert any(c.startswith(f"GET {expected}=") for c in checked), expected
