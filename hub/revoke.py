"""Sessions end when their right ends: revocation (logout, a revoked refresh-token family, a deleted
or banned user) and the check that a token's right still stands.

A revocation is the control event SESSION_REVOKED {userId, familyId?, reason}, written to the outbox
in the transaction that takes the right away (rest/refresh.py for logout and reuse detection, the
users delete trigger of the migrations for a deleted user) and published by the relay on
`user:<userId>`. Every hub hands it here from Hub.deliver (`intercept`) instead of to the sessions:
each local session of the user (of that family only, when familyId is given) gets ERROR
unauthorized and is closed with 4401. It is never forwarded to a client.

A token is also checked against PostgreSQL whenever it opens or renews a session (`standing`): its
user must still exist and not be banned, and its family, when it has one, must not be revoked. A
session checks once before it registers (a refused token is never AUTHENTICATED) and once after (a
revocation committed between the first check and the hub's subscription to the user's channel would
otherwise be missed)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import asyncpg
import orjson

from hub.codes import UNAUTHORIZED
from hub.frame import Frame
from hub.protocol import HubError
from hub.session import Session
from hub.tokens import Claims

if TYPE_CHECKING:
    from hub.hub import Hub

log = logging.getLogger("gigwire.revoke")

EVENT = "SESSION_REVOKED"

Guard = Callable[[Claims], Awaitable[str | None]]
"""Checks a token's standing: None when it may hold a session, else the words of the refusal."""

_REASONS = {
    "logout": "This login was logged out; log in again.",
    "refresh_reused": "This login's refresh token was used twice, so the login was revoked; log in again.",
    "account_deleted": "This account no longer exists.",
    "banned": "This account is banned; contact support.",
    "server_disconnect": "The application's server closed this session; reconnect with a fresh token.",
}
_DEFAULT = "This session's login was revoked; log in again."

# One round trip: the user row (an account deleted by DELETE /api/users/me keeps its row, anonymised,
# with deleted_at set: it counts as gone), and a token of the family not revoked (a logout or reuse
# detection revokes every token of the family; housekeeping deletes only families long dead).
_STANDING = (
    "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL) AS user_ok,"
    " EXISTS (SELECT 1 FROM users WHERE id = $1 AND banned_at IS NOT NULL) AS banned,"
    " ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM refresh_tokens"
    " WHERE family_id = $2::uuid AND revoked_at IS NULL)) AS family_ok"
)


def _uuid(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def standing(pool: asyncpg.Pool, claims: Claims) -> str | None:
    """None when the token's user exists, is not banned, and its family (if any) is not revoked;
    else why not."""
    user_id = _uuid(claims.user_id)
    if user_id is None:
        return _REASONS["account_deleted"]
    family = _uuid(claims.family_id)
    if claims.family_id is not None and family is None:
        return _DEFAULT
    row = await pool.fetchrow(_STANDING, user_id, family)
    assert row is not None
    if not row["user_ok"]:
        return _REASONS["account_deleted"]
    if row["banned"]:
        return _REASONS["banned"]
    if not row["family_ok"]:
        return _DEFAULT
    return None


def guard(hub: Hub) -> Guard:
    """The standing check of sessions on `hub` (its pool, read when a session is checked)."""

    async def check(claims: Claims) -> str | None:
        return await standing(hub.pool, claims)

    return check


def intercept(hub: Hub, user_id: str, data: bytes) -> bool:
    """Called by Hub.deliver for every `user:<id>` message: True when it was a SESSION_REVOKED (its
    sessions here are closed), False for an event to deliver. Never awaits."""
    frame = Frame(data)
    if frame.type != EVENT:
        return False
    try:
        payload = frame.payload
    except (ValueError, orjson.JSONDecodeError):
        payload = {}
    family = payload.get("familyId")
    reason = payload.get("reason")
    message = _REASONS.get(reason, _DEFAULT) if isinstance(reason, str) else _DEFAULT
    closed = 0
    for session in list(hub.users.get(user_id, ())):
        if family is not None and session.family_id != family:
            continue
        end(session, message)
        closed += 1
    if closed:
        log.info(
            "sessions revoked",
            extra={"userId": user_id, "family": family, "reason": reason, "closed": closed},
        )
    return True


def end(session: Session, message: str) -> None:
    """Tell a session its right ended (ERROR unauthorized) and close it with 4401."""
    if session.closing:
        return
    session.answer(None, error=HubError("unauthorized", message), refusal=True)
    session.close(UNAUTHORIZED, "unauthorized")
