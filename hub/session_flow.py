"""The session flow: what a realtime connection goes through whatever its transport, decided in one
place for /ws and Socket.IO alike.

A connection is first WAITING for its identity: a token given with the connection (the /ws query,
the Socket.IO handshake) or an AUTHENTICATE frame within WS_AUTH_TIMEOUT (else ERROR unauthorized
and close 4408); more than 50 frames before that, or a bad token, is refused (ERROR unauthorized,
close 4401). Once authenticated it joins the hub and is OPEN: its frames go to hub.handlers, a
HubError is answered with its code, any other failure with `internal`; AUTHENTICATE again with a
fresh token of the same user answers AUTHENTICATED, another user's is `forbidden`, a bad one closes
4401. When the transport reports the connection GONE, a joined session is removed from the hub.

A session lasts as long as its right (hub.expiry, hub.revoke): a token whose user no longer exists
or whose login (refresh-token family) was revoked is refused like a bad one, when the connection
opens and on re-AUTHENTICATE; an open session is told SESSION_EXPIRING before its token expires and
is closed with 4401 at expiry unless a fresh token moved it; a revocation closes it with 4401.

The transport drives a `SessionFlow` with `open`, `on_frame` and `on_lost`; the flow calls back
only the connection's `Session` side: `push` (server events), `answer` (the answer to one client
frame, which each transport maps: an ACK or ERROR frame on /ws, an ack or ERROR event on
Socket.IO) and `close`."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from hub import handlers
from hub.clock import now_ms
from hub.codes import AUTH_TIMEOUT, GOING_AWAY, TRY_AGAIN_LATER, UNAUTHORIZED
from hub.db import DatabaseUnavailable
from hub.expiry import Expiry
from hub.frame import Frame
from hub.hub import Hub
from hub.logs import outage
from hub.protocol import BadFrame, ClientFrame, HubError
from hub.revoke import Guard, end
from hub.session import Reply, Session
from hub.tokens import Claims, TokenCodec, TokenError

log = logging.getLogger("gigwire.session")

MAX_UNAUTHENTICATED_FRAMES = 50
"""Frames a connection may send (valid or not) before it authenticates; past them it is refused."""


class Stage(enum.Enum):
    """Where a connection stands with the hub."""

    WAITING = "waiting"  # no identity yet: only AUTHENTICATE is served
    OPEN = "open"  # authenticated: a session of the hub (from the moment it starts joining)
    GONE = "gone"  # the transport lost the connection; an open session's removal has started


@dataclass(frozen=True, slots=True)
class Realm:
    """What every flow of one transport shares: the hub, the token codec, the auth time limit, and
    the check of a token's standing (hub.revoke.guard; None checks nothing beyond the token)."""

    hub: Hub
    tokens: TokenCodec
    auth_timeout_s: float
    guard: Guard | None = None


def _token_of(frame: ClientFrame) -> str:
    """The token of a validated AUTHENTICATE frame (the one place that reads it)."""
    return frame.token


def _hello(user_id: str, session: Session, feed_seq: int) -> dict[str, Any]:
    """The AUTHENTICATED data (`feed_seq`: the user's last feedSeq)."""
    return {"userId": user_id, "sessionId": session.session_id, "serverTime": now_ms(), "feedSeq": feed_seq}


class SessionFlow:
    """One connection's authentication and dispatch (see the module's docstring). `session` is the
    connection's outgoing side; before authentication its `user_id` is empty."""

    __slots__ = ("_expiry", "_realm", "_session", "_timer", "_unauthenticated", "since_feed_seq", "stage")

    def __init__(self, realm: Realm, session: Session) -> None:
        self._realm = realm
        self._session = session
        self._expiry = Expiry(session)
        self._timer: asyncio.TimerHandle | None = None  # the authentication time limit
        self._unauthenticated = 0
        self.stage = Stage.WAITING
        self.since_feed_seq: int | None = None  # resume the feed after it (given with the connection)

    @property
    def joined(self) -> bool:
        """Authenticated and (being) registered with the hub."""
        return self.stage is Stage.OPEN

    # -- opening ---------------------------------------------------------------------------------

    def admit(self, token: str) -> Claims:
        """The claims of a token given with the connection; raises HubError `unauthorized`."""
        try:
            return self._realm.tokens.verify(token)
        except TokenError as exc:
            message = f"The token is not valid ({exc}); refresh it and reconnect."
            raise HubError("unauthorized", message) from None

    async def vouch(self, token: str) -> Claims:
        """`admit`, and the token's standing checked: raises HubError `unauthorized` (or `internal`
        when the check itself failed). For a handshake that is refused before the connection opens."""
        claims = self.admit(token)
        refusal = await self._standing(claims)
        if refusal is not None:
            raise refusal
        return claims

    async def _standing(self, claims: Claims) -> HubError | None:
        """None when the token's user exists and its login is not revoked; else the refusal."""
        guard = self._realm.guard
        if guard is None:
            return None
        try:
            refusal = await guard(claims)
        except Exception as exc:
            outage(log, "token standing check failed", userId=claims.user_id, error=repr(exc))
            return HubError("internal", "The server could not check the token just now; reconnect.")
        return None if refusal is None else HubError("unauthorized", refusal)

    def open(self, token: str | None) -> Coroutine[Any, Any, None] | None:
        """The connection is open. Without a token the authentication time limit starts; a bad one
        is refused (ERROR, close 4401); a good one gives the join for the transport to run before
        any client frame."""
        if token is None:
            self._timer = asyncio.get_running_loop().call_later(self._realm.auth_timeout_s, self._expired)
            return None
        try:
            claims = self.admit(token)
        except HubError as exc:
            self._refuse(exc.message, None)
            return None
        return self.join(claims)

    async def join(
        self, claims: Claims, ref: str | None = None, reply: Reply = None, *, vouched: bool = False
    ) -> None:
        """Authenticated: join the hub (its user feed), then greet with AUTHENTICATED, always the
        session's first event. A connection already ending is not registered; one authenticating
        while the server shuts down is closed with 1001. The token's standing is checked first
        (unless `vouched` did) and again once registered (see hub.revoke)."""
        session = self._session
        if self.stage is not Stage.WAITING or session.ending:
            return
        if not vouched:
            refusal = await self._standing(claims)
            if refusal is not None:
                self._refuse_with(refusal, reply)
                return
            if self.stage is not Stage.WAITING or session.ending:
                return
        hub = self._realm.hub
        if not hub.accepting:
            session.close(GOING_AWAY, "server going away: reconnect")
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        session.user_id = claims.user_id
        session.family_id = claims.family_id
        self.stage = Stage.OPEN

        def greet(feed_seq: int) -> None:
            if self.stage is Stage.GONE:  # the client left while we registered
                return
            hello = _hello(claims.user_id, session, feed_seq)
            session.push(Frame.encode("AUTHENTICATED", hello, ref))
            session.answer(reply, ack=hello, echoed=True)

        try:
            await hub.add_session(session, self.since_feed_seq, greet)
        except handlers.UNAVAILABLE as exc:
            # PostgreSQL or Redis failed or is out of connections (a reconnect storm, a restart):
            # the client is told and comes back later (1013), nothing is logged at ERROR.
            outage(log, "join failed", userId=claims.user_id, error=repr(exc))
            if self.stage is not Stage.GONE and not session.ending:
                busy = isinstance(exc, DatabaseUnavailable)
                cause = "the database is busy" if busy else "the server failed"
                self._refuse_with(
                    HubError("internal", f"Could not join now; reconnect later. ({cause})"), reply
                )
            return
        if self.stage is Stage.GONE:  # the client left while we registered
            return
        self._expiry.start(claims)
        if self._realm.guard is not None:
            # A revocation committed after the first check but published before this hub listened
            # on the user's channel did not reach the session: look once more, now that it listens.
            late = await self._standing(claims)
            if late is not None and late.code == "unauthorized" and self.stage is Stage.OPEN:
                end(session, late.message)

    def _expired(self) -> None:
        self._timer = None
        if self.stage is Stage.WAITING and not self._session.ending:
            message = "No AUTHENTICATE in time; reconnect and send it."
            self._session.answer(None, error=HubError("unauthorized", message), refusal=True)
            self._session.close(AUTH_TIMEOUT, "authentication timeout")

    def _refuse(self, message: str, reply: Reply) -> None:
        """Answer `unauthorized` and close 4401."""
        self._refuse_with(HubError("unauthorized", message), reply)

    def _refuse_with(self, error: HubError, reply: Reply) -> None:
        """Answer `error` and close: 4401 for `unauthorized`, 1013 (try again) when the check failed."""
        self._session.answer(reply, error=error, refusal=True)
        if error.code == "unauthorized":
            self._session.close(UNAUTHORIZED, "unauthorized")
        else:
            self._session.close(TRY_AGAIN_LATER, "try again")

    # -- client frames ---------------------------------------------------------------------------

    async def on_frame(self, frame: ClientFrame | BadFrame, reply: Reply) -> None:
        """Handle one client frame (or the reason it is not one), answering through `reply`: the
        transport's name for this frame's answer (the frame's ref on /ws, the ack id on Socket.IO)."""
        session = self._session
        if self.stage is Stage.WAITING:
            self._unauthenticated += 1
            if self._unauthenticated > MAX_UNAUTHENTICATED_FRAMES:
                self._refuse("Too many frames before AUTHENTICATE.", None)
                return
        else:  # every event of an open session, a bad one too, spends its budget (Session.spend)
            kind = "invalid" if isinstance(frame, BadFrame) else frame.type
            wait_ms = session.spend(kind)
            if wait_ms:
                what = "messages" if kind == "CHAT_MESSAGE" else "events"
                error = HubError("rate_limited", f"Too many {what}; retry in {wait_ms} ms.", wait_ms)
                session.answer(reply, error=error)
                return
        if isinstance(frame, BadFrame):
            session.metrics.frame_in(session.transport, "invalid")
            session.answer(reply, error=frame)
            return
        session.metrics.frame_in(session.transport, frame.type)
        if self.stage is Stage.WAITING:
            await self._authenticate(frame, reply)
        elif frame.type == "AUTHENTICATE":
            await self._reauthenticate(frame, reply)
        else:
            await self._dispatch(frame, reply)

    async def _authenticate(self, frame: ClientFrame, reply: Reply) -> None:
        if frame.type != "AUTHENTICATE":
            self._session.answer(reply, error=HubError("unauthorized", "Send AUTHENTICATE {token} first."))
            return
        try:
            claims = self._realm.tokens.verify(_token_of(frame))
        except TokenError as exc:
            self._refuse(f"The token is not valid ({exc}); refresh it and reconnect.", reply)
            return
        if frame.since_feed_seq is not None:  # else the one given with the connection, if any
            self.since_feed_seq = frame.since_feed_seq
        await self.join(claims, frame.ref, reply)

    async def _reauthenticate(self, frame: ClientFrame, reply: Reply) -> None:
        """A fresh token on a live connection (e.g. after a refresh): the same user only, in good
        standing; it moves the session's expiry to its own and the session to its login."""
        session = self._session
        try:
            fresh = self._realm.tokens.verify(_token_of(frame))
        except TokenError as exc:
            session.answer(reply, error=HubError("unauthorized", f"The token is not valid ({exc})."))
            session.close(UNAUTHORIZED, "unauthorized")
            return
        if fresh.user_id != session.user_id:
            session.answer(reply, error=HubError("forbidden", "A connection serves one user; reconnect."))
            return
        refusal = await self._standing(fresh)
        if refusal is not None:
            session.answer(reply, error=refusal)
            if refusal.code == "unauthorized":
                session.close(UNAUTHORIZED, "unauthorized")
            return
        if self.stage is not Stage.OPEN or session.closing:
            return
        session.family_id = fresh.family_id
        self._expiry.start(fresh)
        hello = _hello(fresh.user_id, session, self._realm.hub.feed_seq(fresh.user_id))
        session.push(Frame.encode("AUTHENTICATED", hello, frame.ref))
        session.answer(reply, ack=hello, echoed=True)

    async def _dispatch(self, frame: ClientFrame, reply: Reply) -> None:
        session = self._session
        try:
            ack = await handlers.handle(self._realm.hub, session, frame)
        except HubError as exc:
            session.answer(reply, error=exc)
            return
        except Exception:
            log.exception("event failed", extra={"type": frame.type, "transport": session.transport})
            session.answer(reply, error=HubError("internal", "The server failed; nothing was stored."))
            return
        # PING is answered by its PONG (sent by the handler), which carries the ref on /ws.
        session.answer(reply, ack=ack or {}, echoed=frame.type == "PING")

    # -- leaving ---------------------------------------------------------------------------------

    def on_lost(self) -> None:
        """The connection is gone and its last frame handled: a joined session leaves the hub, once."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._expiry.cancel()
        if self.stage is Stage.OPEN:
            self._realm.hub.forget(self._session)
        self.stage = Stage.GONE
