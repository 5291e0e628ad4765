"""Sessions: one authenticated connection each, whatever its transport. `Session` holds what the hub
keeps per connection (identity, subscribed and verified orders, typing, the chat rate bucket);
each transport implements its outgoing side. `push` never awaits: fan-out is a plain loop over
sessions. `QueuedSession` is the outgoing side of transports whose writes are awaited (Socket.IO):
a bounded queue drained by one writer task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from typing import Any, ClassVar

from hub.codes import GOING_AWAY, POLICY_VIOLATION, TRY_AGAIN_LATER
from hub.frame import Frame
from hub.metrics import HubMetrics
from hub.protocol import HubError
from hub.ratelimit import TokenBucket
from hub.settings import Settings

log = logging.getLogger("gigwire.session")

Reply = str | int | None
"""How a transport names the answer to one client frame: the frame's ref on /ws, the ack id on
Socket.IO; None when the client asked for no answer."""

REFUSALS_PER_S = 5.0  # rate_limited answers a connection may draw a second, sustained
REFUSALS_BURST = 50
SLOW = "too slow a reader: reconnect and resume with sinceSeq"
CLOSE_GRACE_S = 5.0
"""How long a closing session may take to flush before its transport is cut."""


class Session:
    """One authenticated connection. Subclasses implement the outgoing side: `push`, `close`,
    `closing`, `queued` and `wait_closed`; `wait_room` polls `queued` against the bounds."""

    __slots__ = (
        "_bucket",
        "_events",
        "_max_bytes",
        "_max_frames",
        "_refusals",
        "_settings",
        "allowed",
        "conversations",
        "family_id",
        "metrics",
        "orders",
        "session_id",
        "typing",
        "typing_sent",
        "user_id",
    )

    transport: ClassVar[str] = "?"

    def __init__(self, user_id: str, settings: Settings, metrics: HubMetrics) -> None:
        self.user_id = user_id
        self.family_id: str | None = None  # the login (refresh-token family) of the session's token
        self.session_id = uuid.uuid4().hex
        self.metrics = metrics
        self.orders: set[str] = set()  # orders this session is subscribed to (live or replaying)
        self.allowed: set[str] = set()  # orders whose participant check passed
        self.conversations = False  # WATCH_CONVERSATIONS: gets CONVERSATION_UPDATED (hub/conversations.py)
        self.typing: dict[str, asyncio.TimerHandle] = {}
        self.typing_sent: dict[str, float] = {}
        self._settings = settings
        self._bucket: TokenBucket | None = None
        self._events: TokenBucket | None = None
        self._refusals: TokenBucket | None = None
        self._max_frames = settings.ws_queue_max_frames
        self._max_bytes = settings.ws_queue_max_bytes

    @property
    def bucket(self) -> TokenBucket:
        """The chat rate bucket, made on first use (most connections never send)."""
        if self._bucket is None:
            self._bucket = TokenBucket(self._settings.chat_rate_per_s, self._settings.chat_burst)
        return self._bucket

    def spend(self, event_type: str) -> int:
        """Take one client event of `event_type` from the connection's budget: 0 when allowed, else
        the milliseconds until it would be. CHAT_MESSAGE spends the chat budget (CHAT_RATE_PER_S,
        CHAT_BURST), every other event the events budget (EVENT_RATE_PER_S, EVENT_BURST). Each
        refusal also spends patience (REFUSALS_BURST refusals, refilled at REFUSALS_PER_S): a
        connection out of patience keeps hammering after being told, and is closed with 1008."""
        if event_type == "CHAT_MESSAGE":
            wait_ms = self.bucket.take()
        else:
            if self._events is None:
                self._events = TokenBucket(self._settings.event_rate_per_s, self._settings.event_burst)
            wait_ms = self._events.take()
        if wait_ms:
            self.metrics.rate_limited.labels(event_type).inc()
            if self._refusals is None:
                self._refusals = TokenBucket(REFUSALS_PER_S, REFUSALS_BURST)
            if self._refusals.take():
                self.metrics.rate_limit_closes.labels(self.transport).inc()
                log.info("rate limits ignored; connection closed", extra={"session": self.session_id})
                self.close(POLICY_VIOLATION, "over the rate limit after being told: slow down")
        return wait_ms

    @property
    def closing(self) -> bool:
        """True once a close has started; pushes are dropped from then on."""
        raise NotImplementedError

    @property
    def ending(self) -> bool:
        """True once the connection is on its way out (a close started, or its input ended): it is
        not registered with the hub any more."""
        return self.closing

    @property
    def queued(self) -> tuple[int, int]:
        """(frames, bytes) waiting to be written."""
        raise NotImplementedError

    def push(self, frame: Frame) -> None:
        """Send or queue `frame`; never awaits. Over the queue's bound the session closes with 1013."""
        raise NotImplementedError

    def answer(
        self,
        reply: Reply,
        ack: dict[str, Any] | None = None,
        error: HubError | None = None,
        *,
        echoed: bool = False,
        refusal: bool = False,
    ) -> None:
        """Answer one client frame named by `reply` with `ack` data or `error`. `echoed`: an event
        carrying the frame's ref (PONG, AUTHENTICATED) already answered it where refs exist.
        `refusal`: the error ends an unauthenticated connection and must reach the client even when
        it asked for an ack. Never awaits."""
        raise NotImplementedError

    def close(self, code: int, reason: str = "", flush: bool = True) -> None:
        """Start closing with `code` (the first close wins): queued frames are written first when
        `flush`, and the transport is cut if the peer does not take them within a few seconds."""
        raise NotImplementedError

    async def wait_closed(self) -> None:
        """Until the connection is closed."""
        raise NotImplementedError

    async def wait_room(self, frames: int, nbytes: int = 0, patience_s: float = 30.0) -> None:
        """Wait until `frames` more frames of `nbytes` in all fit in the queue's bounds (for replays,
        which may await; fan-out never does). A reader that takes nothing for `patience_s` is too
        slow: closed with 1013."""
        deadline = asyncio.get_running_loop().time() + patience_s
        while not self.closing:
            queued, size = self.queued
            if queued + frames <= self._max_frames and size + nbytes <= self._max_bytes:
                return
            if asyncio.get_running_loop().time() > deadline:
                self.metrics.queue_overflows.labels(self.transport).inc()
                self.close(TRY_AGAIN_LATER, SLOW, flush=False)
                return
            await asyncio.sleep(0.005)

    def overflows(self, size: int) -> bool:
        """Whether one more frame of `size` bytes would break the queue's bounds; if so the session
        is closed with 1013 (a too slow reader)."""
        queued, held = self.queued
        if queued < self._max_frames and held + size <= self._max_bytes:
            return False
        self.metrics.queue_overflows.labels(self.transport).inc()
        log.info("slow reader disconnected", extra={"userId": self.user_id, "session": self.session_id})
        self.close(TRY_AGAIN_LATER, SLOW, flush=False)
        return True


async def close_all(sessions: list[Session], grace_s: float) -> None:
    """Close every one of `sessions` with 1001 and wait, at most `grace_s`, until all are closed."""
    for session in sessions:
        session.close(GOING_AWAY, "server going away: reconnect")
    if sessions:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await asyncio.gather(*(s.wait_closed() for s in sessions))


class QueuedSession(Session):
    """A session whose transport writes are awaited: a bounded queue drained by `run_writer`, which
    the transport runs as a task. Subclasses implement `_write`, `_shutdown` and `_abort`."""

    __slots__ = ("_abort_handle", "_bytes", "_close_code", "_close_reason", "_closed", "_queue", "_wake")

    def __init__(self, user_id: str, settings: Settings, metrics: HubMetrics) -> None:
        super().__init__(user_id, settings, metrics)
        self._queue: deque[Frame] = deque()
        self._bytes = 0
        self._wake = asyncio.Event()
        self._close_code: int | None = None
        self._close_reason = ""
        self._closed = asyncio.Event()
        self._abort_handle: asyncio.TimerHandle | None = None

    @property
    def closing(self) -> bool:
        return self._close_code is not None

    @property
    def queued(self) -> tuple[int, int]:
        return len(self._queue), self._bytes

    def push(self, frame: Frame) -> None:
        if self._close_code is not None or self.overflows(frame.size):
            return
        self._queue.append(frame)
        self._bytes += frame.size
        self._wake.set()

    def close(self, code: int, reason: str = "", flush: bool = True) -> None:
        if self._close_code is not None:
            return
        self._close_code = code
        self._close_reason = reason
        if not flush:
            self._queue.clear()
            self._bytes = 0
        self._wake.set()
        self._abort_handle = asyncio.get_running_loop().call_later(CLOSE_GRACE_S, self._grace_over)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def run_writer(self) -> None:
        """Drain the queue to the transport until closed; then close the transport with the code."""
        queue = self._queue
        try:
            while True:
                while queue:
                    frame = queue.popleft()
                    self._bytes -= frame.size
                    await self._write(frame)
                    self.metrics.frame_out(self.transport, frame.type)
                if self._close_code is not None:
                    break
                self._wake.clear()
                await self._wake.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the peer went away mid-write: nothing more to send
            log.debug("write failed", extra={"session": self.session_id, "error": repr(exc)})
            if self._close_code is None:
                self._close_code = GOING_AWAY
        finally:
            self._queue.clear()
            self._bytes = 0
            code = self._close_code if self._close_code is not None else GOING_AWAY
            # In this task, not a task of its own (as asyncio.wait_for makes before Python 3.12): the
            # transport's disconnect handler, run inside `_shutdown`, waits for the writer unless the
            # writer is the task running it, and would otherwise wait out the whole grace.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_GRACE_S):
                    await self._shutdown(code, self._close_reason)
            if self._abort_handle is not None:
                self._abort_handle.cancel()
            self._closed.set()

    async def _write(self, frame: Frame) -> None:
        raise NotImplementedError

    async def _shutdown(self, code: int, reason: str) -> None:
        raise NotImplementedError

    def _grace_over(self) -> None:
        """The close did not finish within CLOSE_GRACE_S: counted, then the transport is cut."""
        if not self._closed.is_set():
            self.metrics.close_aborts.labels(self.transport).inc()
            self._abort()

    def _abort(self) -> None:
        """Cut the transport at once (a peer that stopped reading cannot take a close frame)."""
        raise NotImplementedError
