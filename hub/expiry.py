"""A session's authentication expires with its access token.

EXPIRY_NOTICE_S before the token's `exp` (a quarter of the token's lifetime when that is shorter) the
session gets SESSION_EXPIRING {expiresAt}; AUTHENTICATE with a fresh token of the same user moves
the expiry to that token's (`start` again). At `exp` the session gets ERROR unauthorized and is
closed with 4401. The times are the token's own: a session never outlives the token that opened or
last renewed it."""

from __future__ import annotations

import asyncio
import time

from hub.events import SessionExpiring
from hub.frame import Frame
from hub.revoke import end
from hub.session import Session
from hub.tokens import Claims

EXPIRY_NOTICE_S = 60.0
"""How long before its token expires a session is told (SESSION_EXPIRING), at most."""

EXPIRED = "The access token expired; refresh it and reconnect (or AUTHENTICATE again before expiresAt)."


def notice_lead(claims: Claims) -> float:
    """Seconds before expiry that SESSION_EXPIRING is sent: 60, or a quarter of the token's lifetime
    when that is shorter."""
    return min(EXPIRY_NOTICE_S, max(claims.expires_at - claims.issued_at, 0) / 4)


class Expiry:
    """The timer of one session: first the notice, which then arms the end (one timer handle per
    session at a time). `start` (re)arms it for a token; `cancel` disarms it (the connection is gone)."""

    __slots__ = ("_session", "_timer", "expires_at")

    def __init__(self, session: Session) -> None:
        self._session = session
        self._timer: asyncio.TimerHandle | None = None
        self.expires_at = 0  # epoch seconds of the current token's exp; 0 before `start`

    def start(self, claims: Claims) -> None:
        """Arm the notice for `claims` (a later token replaces an earlier one's timer)."""
        self.cancel()
        self.expires_at = claims.expires_at
        due = claims.expires_at - notice_lead(claims) - time.time()
        self._timer = asyncio.get_running_loop().call_later(max(due, 0.0), self._warn)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _warn(self) -> None:
        if self._session.closing:
            self._timer = None
            return
        self._session.push(Frame.encode("SESSION_EXPIRING", SessionExpiring(self.expires_at * 1000)))
        left = self.expires_at - time.time()
        self._timer = asyncio.get_running_loop().call_later(max(left, 0.0), self._expire)

    def _expire(self) -> None:
        self._timer = None
        end(self._session, EXPIRED)
