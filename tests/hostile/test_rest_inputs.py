"""Issue 13 defect 8 and its class: NUL, and bytes that are not UTF-8, in a path parameter, a query
name or value, or a header the API reads are refused in the error shape (404 for an id, else 400
naming the part) by rest/inputs.py, before any handler: nothing reaches PostgreSQL. Was: DELETE
/api/devices/%00 a 500 (the NUL reached PostgreSQL), a refresh cookie of invalid UTF-8 a 500 (its
hash could not encode it)."""

from __future__ import annotations

import pytest

from tests.hostile.conftest import LiveServer, World
from tests.hostile.test_rest_pinned import assert_clean, send

CASES = [
    pytest.param("DELETE", b"/api/devices/%00", {}, 400, {"parameter": "token"}, id="device %00"),
    pytest.param("DELETE", b"/api/devices/a%00b", {}, 400, {"parameter": "token"}, id="device a%00b"),
    pytest.param("GET", b"/api/orders/%00", {}, 404, None, id="order id %00"),
    pytest.param("GET", b"/api/gigs/ab%00/applications", {}, 404, None, id="gig id %00"),
    pytest.param("GET", b"/api/gigs?search=a%00", {}, 400, {"parameter": "search"}, id="search %00"),
    pytest.param("GET", b"/api/notifications?cursor=%00", {}, 400, {"parameter": "cursor"}, id="cursor %00"),
    pytest.param("GET", b"/api/orders?status=%00", {}, 400, {"parameter": "status"}, id="status %00"),
    pytest.param("GET", b"/api/gigs?%00=1", {}, 400, {"parameter": "'\\x00'"}, id="query name %00"),
    pytest.param(
        "POST",
        b"/api/auth/refresh",
        {"Cookie": b"refreshToken=\xff\xfe"},
        400,
        {"header": "Cookie"},
        id="refresh cookie not UTF-8",
    ),
    pytest.param(
        "POST",
        b"/api/webhooks/payment",
        {"X-Razorpay-Event-Id": b"evt\xed\xa0\x80"},
        400,
        {"header": "X-Razorpay-Event-Id"},
        id="webhook event id not UTF-8",
    ),
    pytest.param(
        "GET",
        b"/api/users/me",
        {"Authorization": b"Bearer \xff"},
        400,
        {"header": "Authorization"},
        id="auth",
    ),
]


@pytest.mark.parametrize(("method", "target", "headers", "status", "details"), CASES)
def test_unstorable_text_outside_the_body_is_refused_before_sql(
    method: str,
    target: bytes,
    headers: dict[str, bytes],
    status: int,
    details: dict[str, str] | None,
    live: LiveServer,
    world: World,
    caplog: pytest.LogCaptureFixture,
) -> None:
    extra = {name.replace("-", "_"): value for name, value in headers.items()}
    token = None if "Authorization" in headers else world.user.token
    reply = send(live, method, target, token, b"{}" if method == "POST" else None, **extra)
    assert_clean(reply, caplog)
    assert reply.status == status, reply
    if details is not None:
        assert reply.json()["error"]["details"] == details


def test_storable_neighbours_still_reach_their_handlers(
    live: LiveServer, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Percent-encoded invalid UTF-8 in a path stays encoded (a token that names nothing: 404), in
    a query it decodes to U+FFFD (valid text); obs-text in a header nobody reads is let through."""
    reply = send(live, "DELETE", b"/api/devices/%ff", world.user.token)
    assert reply.status == 404, reply
    reply = send(live, "GET", b"/api/gigs?search=%ff", world.user.token)
    assert reply.status == 200, reply
    reply = send(live, "GET", b"/api/users/me", world.user.token, User_Agent=b"caf\xe9")
    assert reply.status == 200, reply
    assert_clean(reply, caplog)
