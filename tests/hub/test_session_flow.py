"""The session flow's decisions, without a transport: what is answered, pushed and closed for each
client frame before and after authentication (the /ws and Socket.IO wire tests cover the mapping)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import pytest

from hub import handlers
from hub.codes import AUTH_TIMEOUT, GOING_AWAY, TRY_AGAIN_LATER, UNAUTHORIZED
from hub.frame import Frame
from hub.hub import Hub
from hub.metrics import HubMetrics
from hub.protocol import BadFrame, ClientFrame, HubError, parse
from hub.session import Reply, Session
from hub.session_flow import MAX_UNAUTHENTICATED_FRAMES, Realm, SessionFlow, Stage
from hub.settings import Settings
from hub.tokens import TokenCodec
from tests.conftest import TEST_JWT_SECRET

SETTINGS = Settings(jwt_secret=TEST_JWT_SECRET)
TOKENS = TokenCodec(SETTINGS)


@dataclass
class Answer:
    reply: Reply
    ack: dict[str, Any] | None
    error: str | None
    echoed: bool
    refusal: bool


class Recorder(Session):
    """A session that records what the flow asks of its transport."""

    __slots__ = ("answers", "closed", "pushed")
    transport = "test"

    def __init__(self) -> None:
        super().__init__("", SETTINGS, HubMetrics())
        self.pushed: list[dict[str, Any]] = []
        self.answers: list[Answer] = []
        self.closed: int | None = None

    @property
    def closing(self) -> bool:
        return self.closed is not None

    @property
    def queued(self) -> tuple[int, int]:
        return 0, 0

    def push(self, frame: Frame) -> None:
        if self.closed is None:
            self.pushed.append(frame.parsed)

    def answer(
        self,
        reply: Reply,
        ack: dict[str, Any] | None = None,
        error: HubError | None = None,
        *,
        echoed: bool = False,
        refusal: bool = False,
    ) -> None:
        code = error.code if error is not None else None
        self.answers.append(Answer(reply, ack, code, echoed, refusal))

    def close(self, code: int, reason: str = "", flush: bool = True) -> None:
        if self.closed is None:
            self.closed = code

    async def wait_closed(self) -> None:
        return None


@dataclass
class FakeHub:
    accepting: bool = True
    added: list[Session] = field(default_factory=list)
    forgotten: list[Session] = field(default_factory=list)

    async def add_session(
        self, session: Session, since: int | None = None, greet: Callable[[int], None] | None = None
    ) -> None:
        self.added.append(session)
        if greet is not None:
            greet(0)  # the user's last feedSeq: an empty feed

    def feed_seq(self, user_id: str) -> int:
        return 0

    def forget(self, session: Session) -> None:
        self.forgotten.append(session)


def _flow(auth_timeout_s: float = 10.0) -> tuple[SessionFlow, Recorder, FakeHub]:
    hub = FakeHub()
    session = Recorder()
    flow = SessionFlow(Realm(cast(Hub, hub), TOKENS, auth_timeout_s), session)
    return flow, session, hub


def _frame(kind: str, data: dict[str, Any] | None = None, ref: str | None = None) -> ClientFrame:
    body: dict[str, Any] = {"type": kind, "data": data or {}}
    if ref is not None:
        body["ref"] = ref
    return parse(orjson.dumps(body))


async def test_a_query_token_joins_and_greets_first() -> None:
    flow, session, hub = _flow()
    join = flow.open(TOKENS.issue("u1"))
    assert join is not None
    await join
    assert hub.added == [session] and session.user_id == "u1" and flow.stage is Stage.OPEN
    assert session.pushed[0]["type"] == "AUTHENTICATED" and session.pushed[0]["data"]["userId"] == "u1"
    assert session.answers == [Answer(None, session.pushed[0]["data"], None, True, False)]


async def test_a_bad_query_token_is_refused_4401() -> None:
    flow, session, hub = _flow()
    assert flow.open("not-a-jwt") is None
    assert session.answers[0].error == "unauthorized" and session.answers[0].refusal
    assert session.closed == UNAUTHORIZED and not hub.added


async def test_no_authenticate_in_time_is_refused_4408() -> None:
    flow, session, _ = _flow(auth_timeout_s=0.01)
    assert flow.open(None) is None
    await asyncio.sleep(0.05)
    assert session.answers == [Answer(None, None, "unauthorized", False, True)]
    assert session.closed == AUTH_TIMEOUT


async def test_before_authentication_only_authenticate_is_served() -> None:
    flow, session, hub = _flow()
    flow.open(None)
    await flow.on_frame(_frame("PING", ref="p"), "p")
    await flow.on_frame(BadFrame("bad_request", "nope", "b"), "b")
    assert [(a.reply, a.error, a.refusal) for a in session.answers] == [
        ("p", "unauthorized", False),
        ("b", "bad_request", False),
    ]
    await flow.on_frame(_frame("AUTHENTICATE", {"token": TOKENS.issue("u1")}, "a"), "a")
    assert hub.added == [session] and session.closed is None
    assert session.pushed[-1]["type"] == "AUTHENTICATED" and session.pushed[-1]["ref"] == "a"
    assert session.answers[-1].echoed and session.answers[-1].reply == "a"
    flow.on_lost()


async def test_more_than_50_frames_before_authenticate_are_refused() -> None:
    flow, session, _ = _flow()
    flow.open(None)
    for _ in range(MAX_UNAUTHENTICATED_FRAMES):
        await flow.on_frame(_frame("PING"), None)
    assert session.closed is None
    await flow.on_frame(_frame("AUTHENTICATE", {"token": TOKENS.issue("u1")}), 7)
    assert session.answers[-1] == Answer(None, None, "unauthorized", False, True)
    assert session.closed == UNAUTHORIZED and flow.stage is Stage.WAITING
    flow.on_lost()


async def test_a_bad_authenticate_token_is_refused_with_its_reply() -> None:
    flow, session, _ = _flow()
    flow.open(None)
    await flow.on_frame(_frame("AUTHENTICATE", {"token": "nope"}), 3)
    assert session.answers == [Answer(3, None, "unauthorized", False, True)]
    assert session.closed == UNAUTHORIZED
    flow.on_lost()


async def test_reauthentication_same_user_other_user_bad_token() -> None:
    flow, session, _ = _flow()
    await cast(Any, flow.open(TOKENS.issue("u1")))
    await flow.on_frame(_frame("AUTHENTICATE", {"token": TOKENS.issue("u1")}, "r"), "r")
    assert session.pushed[-1]["type"] == "AUTHENTICATED" and session.answers[-1].echoed
    await flow.on_frame(_frame("AUTHENTICATE", {"token": TOKENS.issue("u2")}, "o"), "o")
    assert session.answers[-1] == Answer("o", None, "forbidden", False, False)
    assert session.closed is None
    await flow.on_frame(_frame("AUTHENTICATE", {"token": "nope"}, "x"), "x")
    assert session.answers[-1] == Answer("x", None, "unauthorized", False, False)
    assert session.closed == UNAUTHORIZED


async def test_dispatch_answers_acks_errors_and_internal_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    flow, session, _ = _flow()
    await cast(Any, flow.open(TOKENS.issue("u1")))
    await flow.on_frame(_frame("PING", ref="p"), "p")
    assert session.pushed[-1] == {"type": "PONG", "ref": "p"}
    assert session.answers[-1] == Answer("p", {}, None, True, False)

    async def failing(hub: Any, s: Session, frame: ClientFrame) -> None:
        if frame.type == "TYPING_STOP":
            raise HubError("forbidden", "no")
        raise RuntimeError("boom")

    monkeypatch.setattr(handlers, "handle", failing)
    order = {"orderId": "6f1c1d1e-0000-4000-8000-000000000001"}
    await flow.on_frame(_frame("TYPING_STOP", order), 1)
    assert session.answers[-1] == Answer(1, None, "forbidden", False, False)
    await flow.on_frame(_frame("TYPING_START", order), 2)
    assert session.answers[-1] == Answer(2, None, "internal", False, False)
    assert session.closed is None


async def test_a_login_during_shutdown_is_closed_1001_and_not_registered() -> None:
    flow, session, hub = _flow()
    hub.accepting = False
    await cast(Any, flow.open(TOKENS.issue("u1")))
    assert session.closed == GOING_AWAY and not hub.added and flow.stage is Stage.WAITING


async def test_only_a_joined_session_is_removed_from_the_hub_once_lost() -> None:
    flow, session, hub = _flow()
    flow.open(None)
    flow.on_lost()
    assert not hub.forgotten and flow.stage is Stage.GONE
    flow, session, hub = _flow()
    await cast(Any, flow.open(TOKENS.issue("u1")))
    flow.on_lost()
    flow.on_lost()
    assert hub.forgotten == [session]


def _guarded(verdicts: list[str | Exception | None]) -> tuple[SessionFlow, Recorder, FakeHub]:
    """A flow whose standing check answers `verdicts` in turn (an exception is raised)."""
    hub = FakeHub()
    session = Recorder()

    async def guard(claims: Any) -> str | None:
        verdict = verdicts.pop(0)
        if isinstance(verdict, Exception):
            raise verdict
        return verdict

    return SessionFlow(Realm(cast(Hub, hub), TOKENS, 10.0, guard), session), session, hub


async def test_a_token_without_standing_is_refused_4401_and_a_failed_check_closes_1013() -> None:
    flow, session, hub = _guarded(["This account no longer exists."])
    await cast(Any, flow.open(TOKENS.issue("u1")))
    assert session.answers == [Answer(None, None, "unauthorized", False, True)]
    assert session.closed == UNAUTHORIZED and not hub.added and not session.pushed
    flow, session, hub = _guarded([OSError("database down")])
    flow.open(None)
    await flow.on_frame(_frame("AUTHENTICATE", {"token": TOKENS.issue("u1")}, "a"), "a")
    assert session.answers == [Answer("a", None, "internal", False, True)]
    assert session.closed == TRY_AGAIN_LATER and not hub.added


async def test_a_revocation_found_once_registered_ends_the_session_and_reauth_is_checked() -> None:
    flow, session, hub = _guarded([None, "revoked"])
    await cast(Any, flow.open(TOKENS.issue("u1")))
    assert hub.added == [session] and session.pushed[0]["type"] == "AUTHENTICATED"
    assert session.answers[-1] == Answer(None, None, "unauthorized", False, True)
    assert session.closed == UNAUTHORIZED
    flow.on_lost()
    flow, session, hub = _guarded([None, None, "revoked"])
    await cast(Any, flow.open(TOKENS.issue("u1")))
    assert session.closed is None
    await flow.on_frame(_frame("AUTHENTICATE", {"token": TOKENS.issue("u1")}, "r"), "r")
    assert session.answers[-1] == Answer("r", None, "unauthorized", False, False)
    assert session.closed == UNAUTHORIZED and [p["type"] for p in session.pushed] == ["AUTHENTICATED"]
    flow.on_lost()
