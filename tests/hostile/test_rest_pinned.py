"""The cases the REST property tests (test_rest_hostile.py) keep out, pinned one each: what aiohttp's
HTTP parser refuses before any handler runs (fixed, kept as guards), and the known issue-13
defects, as strict xfails (a fix makes its xfail pass and the run fail: remove the mark, and the
case's entry in test_rest_hostile.known_defect). The cases that pass today guard their neighbours."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.hostile import strategies as hs
from tests.hostile.conftest import LiveServer, Reply, Route, World, server_errors
from tests.hostile.test_rest_hostile import Case, problems


def xfail(reason: str) -> pytest.MarkDecorator:
    """A known issue-13 defect: strict, so its fix fails the run until the mark is removed."""
    return pytest.mark.xfail(strict=True, reason=f"issue 13: {reason}")


def send(
    live: LiveServer,
    method: str,
    target: bytes,
    token: str | None = None,
    body: bytes | None = None,
    **extra: bytes,
) -> Reply:
    headers = {"Content-Type": b"application/json", "Idempotency-Key": secrets.token_hex(8).encode()}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}".encode()
    headers.update({name.replace("_", "-"): value for name, value in extra.items()})
    return live.http(method, target, headers, body)


def assert_clean(reply: Reply, caplog: pytest.LogCaptureFixture, path: str = "/api") -> None:
    case = Case(Route("GET", path, ()), "", b"", {}, None)
    found = problems(case, reply, server_errors(caplog.records))
    assert not found, "\n".join(found)


# What aiohttp's HTTP parser refuses before any handler runs (raw non-ASCII bytes in the request
# line, a line over 8190 bytes, control characters in a header): a 400 in the error shape and one
# client-fault warning (hub.compat_aiohttp.GigwireRequestHandler), no ERROR.
PARSER_CASES = [
    pytest.param(b"/api/gigs/%ff?x=%00", {}, id="percent-encoded is fine"),
    pytest.param(b"/api/gigs/..%2f..%2fetc", {}, id="encoded traversal is fine"),
    pytest.param(b"/api/gigs?" + b"&".join(b"x=%d" % i for i in range(1000)), {}, id="1000 query pairs"),
    pytest.param(b"/api/gigs/\xff", {}, id="raw 0xff in the path"),
    pytest.param(b"/api/gigs/\xed\xa0\x80", {}, id="raw surrogate bytes in the path"),
    pytest.param(b"/api/gigs?search=\xff\xfe", {}, id="raw 0xff in the query"),
    pytest.param(b"/api/gigs?search=caf\xc3\xa9", {}, id="raw UTF-8 in the query"),
    pytest.param(b"/api/gigs?q=" + b"a" * 9000, {}, id="request line over 8190 bytes"),
    pytest.param(b"/api/users/me", {"X-Request-Id": b"a\x04b"}, id="control char in a header"),
    pytest.param(b"/api/users/me", {"Authorization": b"Bearer \x7f"}, id="DEL in Authorization"),
    pytest.param(b"/api/users/me", {"Idempotency-Key": b"k" * 9000}, id="header over 8190 bytes"),
    pytest.param(b"/api/users/me", {"X-Request-Id": b"\xff\xfe"}, id="obs-text header is fine"),
]


@pytest.mark.parametrize(("target", "headers"), PARSER_CASES)
def test_what_the_http_parser_refuses(
    target: bytes, headers: dict[str, bytes], live: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    reply = live.http("GET", target, {"Content-Type": b"application/json", **headers})
    assert_clean(reply, caplog)


def test_deadline_at_the_end_of_time(
    live: LiveServer, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Was a 500 (OverflowError) with or without a token; fixed on main, kept as a guard."""
    for target in (b"/api/gigs?deadline=9999-12-31", b"/api/gigs/my-gigs?deadline=9999-12-31"):
        for token in (None, world.user.token):
            reply = send(live, "GET", target, token)
            assert_clean(reply, caplog)


DEADLINE_MS = 1_900_000_000_000  # 2030
# The writes a deleted user's (validly signed) token reaches, each with a body that is valid otherwise
# (each was a 500, a foreign-key violation, before the vanished-user check: 401 now).
DELETED_USER_WRITES = [
    pytest.param(
        "POST",
        "/api/gigs",
        {
            "title": "A logo for us",
            "description": "We need a logo for the shop.",
            "category": "design",
            "skills": ["photoshop"],
            "budgetMin": 1000,
            "budgetMax": 5000,
            "deadline": DEADLINE_MS,
        },
        id="POST /api/gigs",
    ),
    pytest.param(
        "POST",
        "/api/gigs/{gig}/applications",
        {"proposal": "I can do it well.", "bidAmount": 2000},
        id="POST /api/gigs/{id}/applications",
    ),
    pytest.param(
        "POST",
        "/api/devices",
        {"token": "deleted-user-device", "platform": "android"},
        id="POST /api/devices",
    ),
    pytest.param(
        "POST",
        "/api/bank-accounts",
        {"holderName": "A B", "accountNumber": "123456789012", "ifsc": "HDFC0001234"},
        id="POST /api/bank-accounts",
    ),
    pytest.param(
        "PUT",
        "/api/notifications/preferences",
        {"payment": {"push": False}},
        id="PUT /api/notifications/preferences",
    ),
    pytest.param("PATCH", "/api/users/me", {"name": "Gone"}, id="PATCH /api/users/me"),
]


@pytest.mark.parametrize(("method", "path", "body"), DELETED_USER_WRITES)
def test_a_deleted_users_token_on_writes(
    method: str,
    path: str,
    body: dict[str, Any],
    live: LiveServer,
    world: World,
    caplog: pytest.LogCaptureFixture,
) -> None:
    target = path.replace("{gig}", world.gig_id).encode()
    reply = send(live, method, target, world.deleted_user.token, hs.encode(body).encode())
    assert_clean(reply, caplog)
    assert reply.status in (401, 404), reply


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(b"%00", id="%00"),  # was a 500: the NUL reached PostgreSQL (test_rest_inputs.py)
        pytest.param(b"a%00b", id="a%00b"),
        pytest.param(b"%ff", id="%ff"),
    ],
)
def test_delete_device_with_a_hostile_token(
    token: bytes, live: LiveServer, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    assert_clean(send(live, "DELETE", b"/api/devices/" + token, world.user.token), caplog)


def test_socketio_without_a_protocol_version(live: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    """Was an ERROR line (engineio, the first per process): a client's fault, one warning now."""
    reply = live.http("GET", b"/socket.io/?transport=polling", {})
    assert reply.status == 400
    assert not server_errors(caplog.records)
