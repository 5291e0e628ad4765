"""Sessions: one authenticated connection each, whatever its transport, with a bounded outgoing
queue drained by one writer task. `push` never awaits: fan-out is a plain loop over sessions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from typing import Protocol

from hub.frame import Frame
from hub.metrics import HubMetrics
from hub.ratelimit import TokenBucket
from hub.settings import Settings

log = logging.getLogger("gigwire.session")

GOING_AWAY = 1001
TOO_BIG = 1009
TRY_AGAIN_LATER = 1013
UNAUTHORIZED = 4401
AUTH_TIMEOUT = 4408

_SLOW = "too slow a reader: reconnect and resume with sinceSeq"
# How long a closing session may take to flush before its transport is cut.
_CLOSE_GRACE_S = 5.0


class Session(Protocol):
    """One authenticated connection, whatever its transport."""

    user_id: str
    session_id: str
    transport: str

    def push(self, frame: Frame) -> None:
        """Queue `frame`; never awaits. Over the queue's bound the session closes with 1013."""
        ...

    def close(self, code: int, reason: str = "", flush: bool = True) -> None:
        """Start closing with `code`: queued frames are written first when `flush`."""
        ...


class QueuedSession:
    """Base of every transport's session: the bounded queue, the writer, and the per-connection
    chat state the hub keeps (subscribed orders, verified orders, typing, the chat rate bucket).
    Subclasses implement `_write` and `_shutdown`."""

    transport = "?"

    def __init__(self, user_id: str, settings: Settings, metrics: HubMetrics) -> None:
        self.user_id = user_id
        self.session_id = uuid.uuid4().hex
        self.metrics = metrics
        self.orders: set[str] = set()  # orders this session is subscribed to (live or replaying)
        self.allowed: set[str] = set()  # orders whose participant check passed
        self.typing: dict[str, asyncio.TimerHandle] = {}
        self.typing_sent: dict[str, float] = {}
        self.bucket = TokenBucket(settings.chat_rate_per_s, settings.chat_burst)
        self._max_frames = settings.ws_queue_max_frames
        self._max_bytes = settings.ws_queue_max_bytes
        self._queue: deque[Frame] = deque()
        self._bytes = 0
        self._wake = asyncio.Event()
        self._close_code: int | None = None
        self._close_reason = ""
        self._closed = asyncio.Event()
        self._abort_handle: asyncio.TimerHandle | None = None
        self._idle = False  # the writer waits for frames: `push` may write directly (`_direct`)

    @property
    def closing(self) -> bool:
        """True once a close has started; pushes are dropped from then on."""
        return self._close_code is not None

    @property
    def queued(self) -> tuple[int, int]:
        """(frames, bytes) waiting to be written."""
        return len(self._queue), self._bytes

    def push(self, frame: Frame) -> None:
        """Queue `frame` for the writer; over the bound, drop the queue and close with 1013."""
        if self._close_code is not None:
            return
        if self._idle and not self._queue and self._direct(frame):
            self.metrics.frame_out(self.transport, frame.type)
            return
        size = frame.size
        if len(self._queue) >= self._max_frames or self._bytes + size > self._max_bytes:
            self.metrics.queue_overflows.labels(self.transport).inc()
            log.info("slow reader disconnected", extra={"userId": self.user_id, "session": self.session_id})
            self.close(TRY_AGAIN_LATER, _SLOW, flush=False)
            return
        self._queue.append(frame)
        self._bytes += size
        self._wake.set()

    def close(self, code: int, reason: str = "", flush: bool = True) -> None:
        """Start closing with `code` (the first close wins); the writer flushes unless told not to,
        and the transport is cut if the peer does not take the rest within a few seconds."""
        if self._close_code is not None:
            return
        self._close_code = code
        self._close_reason = reason
        if not flush:
            self._queue.clear()
            self._bytes = 0
            self._discard_direct()
        self._wake.set()
        self._abort_handle = asyncio.get_running_loop().call_later(_CLOSE_GRACE_S, self._abort)

    async def wait_room(self, frames: int, nbytes: int = 0, patience_s: float = 30.0) -> None:
        """Wait until `frames` more frames of `nbytes` in all fit in the queue's bounds (for replays,
        which may await; fan-out never does). A reader that takes nothing for `patience_s` is too
        slow: closed with 1013."""
        deadline = asyncio.get_running_loop().time() + patience_s
        while not self.closing and (
            len(self._queue) + frames > self._max_frames or self._bytes + nbytes > self._max_bytes
        ):
            if asyncio.get_running_loop().time() > deadline:
                self.metrics.queue_overflows.labels(self.transport).inc()
                self.close(TRY_AGAIN_LATER, _SLOW, flush=False)
                return
            await asyncio.sleep(0.005)

    async def wait_closed(self) -> None:
        """Until the writer has finished."""
        await self._closed.wait()

    async def run_writer(self) -> None:
        """Drain the queue to the transport until closed; then close the transport with the code."""
        queue = self._queue
        try:
            while True:
                if queue:
                    self._flush_direct()  # bytes written directly go first
                while queue:
                    frame = queue.popleft()
                    self._bytes -= frame.size
                    await self._write(frame)
                    self.metrics.frame_out(self.transport, frame.type)
                if self._close_code is not None:
                    break
                self._wake.clear()
                self._idle = True
                try:
                    await self._wake.wait()
                finally:
                    self._idle = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the peer went away mid-write: nothing more to send
            log.debug("write failed", extra={"session": self.session_id, "error": repr(exc)})
            if self._close_code is None:
                self._close_code = GOING_AWAY
        finally:
            self._queue.clear()
            self._bytes = 0
            with contextlib.suppress(Exception):
                self._flush_direct()  # before the close frame
            code = self._close_code if self._close_code is not None else GOING_AWAY
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._shutdown(code, self._close_reason), _CLOSE_GRACE_S)
            if self._abort_handle is not None:
                self._abort_handle.cancel()
            self._closed.set()

    async def _write(self, frame: Frame) -> None:
        raise NotImplementedError

    # Direct writes: while the writer is idle, a transport may take a frame at once, without
    # waking the writer task. Bytes so taken are buffered per session and written once per event
    # loop iteration (`schedule_flush`): one send per session however many frames it got.
    def _direct(self, frame: Frame) -> bool:
        """Take `frame` for writing now if the transport can (default: never)."""
        return False

    def _flush_direct(self) -> None:
        """Write what `_direct` took (called once per loop iteration and before the writer writes)."""

    def _discard_direct(self) -> None:
        """Drop what `_direct` took and is not yet written (a close without flush)."""

    async def _shutdown(self, code: int, reason: str) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        """Cut the transport at once (a peer that stopped reading cannot take a close frame)."""
        raise NotImplementedError


class _Flusher:
    """The sessions holding directly written bytes, flushed together at the end of the current
    event loop iteration (one callback for all of them)."""

    __slots__ = ("loop", "pending")

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pending: list[QueuedSession] = []

    def add(self, session: QueuedSession) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self.loop:  # a new loop (tests run several): nothing pending survives
            self.loop, self.pending = loop, []
        if not self.pending:
            loop.call_soon(self.flush)
        self.pending.append(session)

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        for session in pending:
            try:
                session._flush_direct()
            except Exception as exc:  # the peer is gone; its reader notices and closes the session
                log.debug("direct write failed", extra={"session": session.session_id, "error": repr(exc)})


schedule_flush = _Flusher().add
