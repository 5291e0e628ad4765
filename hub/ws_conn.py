"""One /ws connection: an asyncio protocol on the socket's transport, the RFC 6455 codec glue
(hub.websocket) and the outgoing side of the hub's session; authentication and dispatch are the
session flow's (hub.session_flow).

Reading is callbacks: frames are parsed as they arrive and a task runs only while client frames
wait to be handled, one at a time in order. Writing never awaits: frames go to the transport at the
end of the event loop iteration (WsFront batches the flushes), one send per connection however many
frames it got; while the transport is over its high-water mark they wait in a bounded queue written
out as it drains. An idle connection holds no task and no deque."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from hub import websocket
from hub.codes import ABNORMAL, INTERNAL_ERROR, NO_STATUS, NORMAL
from hub.compat_aiohttp import tell_lost
from hub.frame import Frame
from hub.protocol import BadFrame, ClientFrame, HubError, parse
from hub.session import CLOSE_GRACE_S, Reply
from hub.session_flow import SessionFlow
from hub.ws_output import _CLOSING, _OUT_MAX, State, WsOutput, ws_wire

if TYPE_CHECKING:
    from hub.ws_front import WsFront

log = logging.getLogger("gigwire.ws")

_INBOX_PAUSE = 32  # client frames waiting to be handled before the socket stops being read
_INBOX_RESUME = 8
_YIELD_EVERY = 16  # client frames handled before the frame task lets other work run


class WsConnection(WsOutput, asyncio.Protocol):
    """One /ws connection, which is also its hub session. Before authentication `user_id` is empty
    and the hub does not know it.

    Ending: a close the server starts (`close`) drops client frames not yet handled and waits for
    the client's close frame; when input ends first (the client's close frame, or a protocol
    violation) the frames already received are handled, then the close frame is sent and the
    socket closed. Either way the socket is cut if the peer has not finished within CLOSE_GRACE_S.
    `_code` is the close code: the one to answer while ENDING, the one sent from CLOSING on."""

    __slots__ = (
        "_beat",
        "_closed",
        "_flow",
        "_front",
        "_handover",
        "_inbox",
        "_reading_paused",
        "_started",
        "_task",
        "_timer",
    )

    transport = "ws"

    def __init__(self, front: WsFront, handover: asyncio.BaseProtocol | None = None) -> None:
        super().__init__("", front.settings, front.metrics)
        self._front = front
        self._flow = SessionFlow(front.realm, self)
        self._handover = handover  # an aiohttp protocol to tell of the connection's loss
        self._transport: asyncio.Transport | None = None
        self._reader: websocket.Reader | None = websocket.Reader(front.settings.ws_max_frame_bytes)
        self._inbox: deque[str | bytes] | None = None
        self._task: asyncio.Task[None] | None = None
        self._out: bytearray | None = None  # frames for this loop iteration's single write
        self._queue: deque[bytes] | None = None  # frames waiting for the transport to drain
        self._queued_bytes = 0
        self._paused = False  # the transport is over its high-water mark
        self._pong: bytes | None = None  # the latest ping's answer, while paused
        self._reading_paused = False
        self._state = State.OPEN
        self._code: int | None = None
        self._reason = ""
        self._closed: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None  # the close grace
        self._beat = 0
        self._started = 0.0

    def start(self, token: str | None, since_feed_seq: int | None = None) -> None:
        """Begin the session flow with the query's token and sinceFeedSeq, if any (after
        `connection_made`)."""
        self._flow.since_feed_seq = since_feed_seq
        first = self._flow.open(token)
        if first is not None:
            self._task = asyncio.get_running_loop().create_task(self._serve(first), name="gigwire-ws-frames")

    # -- Session ---------------------------------------------------------------------------------

    @property
    def registered(self) -> bool:
        """Authenticated and known to the hub."""
        return self._flow.joined

    @property
    def closing(self) -> bool:
        return self._state >= State.CLOSING

    @property
    def ending(self) -> bool:
        return self._state >= State.ENDING

    @property
    def queued(self) -> tuple[int, int]:
        queue = self._queue
        return (len(queue), self._queued_bytes) if queue else (0, 0)

    def push(self, frame: Frame) -> None:
        if self._state >= _CLOSING:
            return
        wire = frame.for_transport("ws-wire", ws_wire)
        out = self._out
        if self._paused or self._queue or (out is not None and len(out) >= _OUT_MAX):
            if self.overflows(len(wire)):
                return
            if self._queue is None:
                self._queue = deque()
            self._queue.append(wire)
            self._queued_bytes += len(wire)
        elif out is None:
            self._out = bytearray(wire)
            self._front.schedule_flush(self)
        else:
            out += wire
        self.metrics.frame_out("ws", frame.type)

    def answer(
        self,
        reply: Reply,
        ack: dict[str, Any] | None = None,
        error: HubError | None = None,
        *,
        echoed: bool = False,
        refusal: bool = False,
    ) -> None:
        """An ERROR frame (with the frame's ref, when it had one), or an ACK when the frame had a
        ref and no event carrying it answered already."""
        ref = reply if isinstance(reply, str) else None
        if error is not None:
            self.push(error.frame(ref))
        elif ref is not None and not echoed:
            self.push(Frame.encode("ACK", ack or {}, ref))

    def close(self, code: int, reason: str = "", flush: bool = True) -> None:
        """A close the server starts (or the one answering the end of input)."""
        if self._state >= State.CLOSING:
            return
        was, self._state = self._state, State.CLOSING
        self._code = code
        self._reason = reason
        self._inbox = None
        if was is State.OPEN:
            self._read_more()  # the client's close frame must still be read
        if not flush:
            self._out = None
            self._queue = None
            self._queued_bytes = 0
        if not self._queue:
            self._send_close()
        self._arm(CLOSE_GRACE_S, self._grace_over)

    async def wait_closed(self) -> None:
        if self._state is State.CLOSED:
            return
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._closed)

    def abort(self) -> None:
        """Cut the socket at once (the peer did not finish closing, or stopped answering)."""
        if self._transport is not None and self._state is not State.CLOSED:
            self._transport.abort()

    def _grace_over(self) -> None:
        """The close did not finish within CLOSE_GRACE_S: counted, then cut."""
        if self._transport is not None and self._state is not State.CLOSED:
            self.metrics.close_aborts.labels(self.transport).inc()
        self.abort()

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, callback)

    def _read_more(self) -> None:
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()

    # -- asyncio protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._started = asyncio.get_running_loop().time()
        self._front.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._beat = 0
        reader = self._reader
        if reader is None:
            return
        for opcode, payload in reader.feed(data):
            if opcode in (websocket.OP_TEXT, websocket.OP_BINARY):
                if self._state is State.OPEN:  # a close started: frames not handled yet are dropped
                    if self._inbox is None:
                        self._inbox = deque()
                    self._inbox.append(cast("str | bytes", payload))
            elif opcode == websocket.OP_PING:
                self._answer_ping(cast(bytes, payload))
            elif opcode == websocket.OP_CLOSE:
                self._end_input(cast("tuple[int, str]", payload)[0], "")
        if reader.error is not None:
            error = reader.error
            log.info(
                "protocol error",
                extra={"session": self.session_id, "code": error.code, "error": error.reason},
            )
            self._end_input(error.code, error.reason)
        inbox = self._inbox
        if inbox and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._serve(), name="gigwire-ws-frames")
        if inbox and len(inbox) >= _INBOX_PAUSE and not self._reading_paused and self._reader is not None:
            self._reading_paused = True
            cast(asyncio.Transport, self._transport).pause_reading()

    def eof_received(self) -> bool | None:
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._state < State.CLOSING:
            self._code = ABNORMAL
        self._state = State.CLOSED
        log.info(
            "connection closed",
            extra={
                "session": self.session_id,
                "userId": self.user_id or None,
                "code": self._code,
                "seconds": round(asyncio.get_running_loop().time() - self._started, 1),
            },
        )
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._reader = None
        self._out = None
        self._queue = None
        self._queued_bytes = 0
        self._pong = None
        if not self._flow.joined:
            self._inbox = None  # frames received whole are still handled for a session
        self._front.connections.discard(self)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        if self._task is None:
            self._flow.on_lost()
        if self._handover is not None:
            handover, self._handover = self._handover, None
            tell_lost(handover, exc)

    def _answer_ping(self, payload: bytes) -> None:
        """Answer a ping; while the transport pushes back only the latest is kept (RFC 6455
        5.5.3), so a ping flood cannot grow the write buffer."""
        if self._state >= State.CLOSE_SENT or self._transport is None:
            return
        if self._paused:
            self._pong = payload
            return
        self.flush()
        self._transport.write(websocket.frame(websocket.OP_PONG, payload))

    def _end_input(self, code: int, reason: str) -> None:
        """No more input: the client's close frame (`code` echoed) or a violation (`code` sent).
        Frames already received are handled first; the socket is cut after the grace."""
        self._reader = None
        self._read_more()  # paused reading would hide the peer's EOF
        if self._state is State.CLOSE_SENT:  # the answer to our close: done
            if self._transport is not None:
                self._transport.close()
            return
        if self._state is not State.OPEN:  # a close already started: it finishes as it is
            return
        self._state = State.ENDING
        self._code = code if code not in (NO_STATUS, ABNORMAL) else NORMAL
        self._reason = reason
        self._arm(CLOSE_GRACE_S, self._grace_over)
        if self._task is None and not self._inbox:
            self.close(self._code, reason)

    def beat(self) -> None:
        """One liveness sweep (see WsFront._sweep)."""
        if self._state is State.CLOSED:
            return
        beat = self._beat
        if beat == 0:
            self._beat = 1
        elif beat == 1:
            self._beat = 2
            if self._transport is not None and self._state < State.CLOSE_SENT:
                self._transport.write(websocket.PING)
        else:
            log.info("no answer to ping; connection cut", extra={"session": self.session_id})
            self.abort()

    # -- client frames ---------------------------------------------------------------------------

    async def _serve(self, first: Awaitable[None] | None = None) -> None:
        """Hand waiting client frames to the session flow one at a time, in order, until none is
        left (after `first`, the join of a token given in the query). Yields to the loop every few
        frames, so a burst of frames that need no I/O does not hold it."""
        handled = 0
        flow = self._flow
        try:
            if first is not None:
                await first
            while inbox := self._inbox:
                payload = inbox.popleft()
                if len(inbox) <= _INBOX_RESUME and self._reader is not None:
                    self._read_more()
                frame = _parsed(payload)
                await flow.on_frame(frame, frame.ref)
                handled += 1
                if handled % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        except Exception:
            log.exception("frame handling failed", extra={"session": self.session_id})
            self.close(INTERNAL_ERROR, "internal error")
        finally:
            self._task = None
            if not self._inbox:
                self._inbox = None  # an idle connection keeps no deque (about 600 bytes)
            if self._state is State.CLOSED:
                flow.on_lost()
            elif self._state is State.ENDING and self._inbox is None and self._code is not None:
                self.close(self._code, self._reason)


def _parsed(payload: str | bytes) -> ClientFrame | BadFrame:
    """The client frame in `payload`, or why it is not one."""
    if isinstance(payload, bytes):
        return BadFrame("bad_request", "Frames are JSON text, not binary.")
    try:
        return parse(payload)
    except BadFrame as exc:
        return exc
