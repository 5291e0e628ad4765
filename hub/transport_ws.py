"""GET /ws: the raw WebSocket transport (PROTOCOL.md), and `setup_realtime`, which mounts the hub
(/ws, /metrics, its start, stop and shutdown) on the web app.

Each connection is one `WsConnection`: an asyncio protocol on the socket's transport that is also
the hub's session, with no task while it is idle. Reading is callbacks: frames are parsed as they
arrive (hub.websocket) and a task runs only while client frames wait to be handled, one at a time
in order. Writing never awaits: frames go to the transport at the end of the event loop iteration,
one send per connection however many frames it got; while the transport is over its high-water mark
they wait in a bounded queue written out as it drains. Liveness is one sweep for all connections.

A connection arrives either through hub.door (a fresh TCP connection whose first request is the
upgrade: no aiohttp request state is kept for it) or through the aiohttp route below (an upgrade on
a kept-alive connection that served other requests first), which completes the handshake itself and
hands the socket over in the same way."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

from aiohttp import web

from hub import handlers, websocket
from hub.app import DELIVER
from hub.frame import Frame, now_ms
from hub.hub import Hub
from hub.keys import BROKER, HUB, POOL, SETTINGS, STORE, TOKENS, WS_FRONT
from hub.metrics import METRICS, HubMetrics, metrics_handler
from hub.presence import Presence
from hub.protocol import BadFrame, ClientFrame, HubError, parse
from hub.session import (
    AUTH_TIMEOUT,
    CLOSE_GRACE_S,
    GOING_AWAY,
    NORMAL,
    UNAUTHORIZED,
    Session,
    close_all,
)
from hub.settings import Settings
from hub.tokens import TokenCodec, TokenError

log = logging.getLogger("gigwire.ws")

_MAX_UNAUTHENTICATED_FRAMES = 50
_INBOX_PAUSE = 32  # client frames waiting to be handled before the socket stops being read
_INBOX_RESUME = 8
_YIELD_EVERY = 16  # client frames handled before the frame task lets other work run
_OUT_MAX = 64 * 1024  # bytes gathered for one write; past it frames wait in the bounded queue
_ABNORMAL = 1006  # the code a session records when the connection was lost without a close


def ws_wire(frame: Frame) -> bytes:
    """The complete unmasked WebSocket text frame (RFC 6455 5.2) carrying `frame.data`."""
    return websocket.frame(websocket.OP_TEXT, frame.data)


class WsFront:
    """This process's /ws side: the open connections (authenticated or not), their liveness sweep,
    and what every connection needs (hub, token codec, settings, metrics)."""

    def __init__(self, hub: Hub, tokens: TokenCodec, settings: Settings, metrics: HubMetrics) -> None:
        self.hub = hub
        self.tokens = tokens
        self.settings = settings
        self.metrics = metrics
        self.connections: set[WsConnection] = set()
        self._pending: list[WsConnection] = []  # connections holding bytes to write this iteration
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def accepting(self) -> bool:
        return self.hub.accepting

    def accept(
        self,
        transport: asyncio.Transport,
        upgrade: websocket.Upgrade,
        rest: bytes = b"",
        handover: asyncio.BaseProtocol | None = None,
    ) -> WsConnection:
        """Take over `transport` for an upgrade request already read (`rest`: bytes that followed
        it): answer 101 and serve it. `handover` is the protocol that had the transport, told of
        the connection's loss when it happens."""
        conn = WsConnection(self, upgrade.query.get("token"), handover)
        transport.set_protocol(conn)
        transport.write(upgrade.response())
        conn.connection_made(transport)
        transport.resume_reading()  # in case the protocol before paused it
        if rest:
            conn.data_received(rest)
        return conn

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="gigwire-ws-heartbeat")

    def close_waiting(self) -> None:
        """Close the connections not (yet) sessions with 1001; the hub closes its sessions."""
        for conn in list(self.connections):
            if not conn.registered:
                conn.close(GOING_AWAY, "server going away: reconnect")

    async def stop(self, grace_s: float = 5.0) -> None:
        """Close every connection still open with 1001 (the hub has closed its sessions by now;
        this catches any that registered meanwhile), wait for them, and stop the liveness sweep."""
        await close_all(list(self.connections), grace_s)
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)

    async def _sweep(self) -> None:
        """Every WS_HEARTBEAT seconds: a connection heard from since the last sweep is marked
        unheard; one unheard for a whole interval is pinged; one still unheard after its ping is
        cut (its session is removed when the transport reports the loss)."""
        while True:
            await asyncio.sleep(self.settings.ws_heartbeat_s)
            for conn in list(self.connections):
                try:
                    conn.beat()
                except Exception:
                    log.exception("liveness check failed", extra={"session": conn.session_id})

    def schedule_flush(self, conn: WsConnection) -> None:
        """Write `conn`'s buffered bytes at the end of this loop iteration, with every other
        connection's (one callback for all)."""
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(conn)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for conn in pending:
            try:
                conn.flush()
            except Exception:  # one broken transport must not stall the others
                log.exception("write failed", extra={"session": conn.session_id})
                conn.abort()


class WsConnection(Session, asyncio.Protocol):
    """One /ws connection: the protocol on its transport, and once authenticated the hub's session.
    Before authentication `user_id` is empty and the hub does not know it.

    Ending: a close the server starts (`close`) drops client frames not yet handled and waits for
    the client's close frame; when input ends first (the client's close frame, or a protocol
    violation) the frames already received are handled, then the close frame is sent and the
    socket closed. Either way the socket is cut if the peer has not finished within CLOSE_GRACE_S."""

    __slots__ = (
        "_beat",
        "_close_sent",
        "_closed",
        "_code",
        "_drop_input",
        "_ending",
        "_front",
        "_handover",
        "_inbox",
        "_lost",
        "_out",
        "_paused",
        "_pong",
        "_queue",
        "_queued_bytes",
        "_reader",
        "_reading_paused",
        "_reason",
        "_registered",
        "_removed",
        "_started",
        "_task",
        "_timer",
        "_token",
        "_transport",
        "_unauthenticated",
    )

    transport = "ws"

    def __init__(self, front: WsFront, token: str | None, handover: asyncio.BaseProtocol | None = None):
        super().__init__("", front.settings, front.metrics)
        self._front = front
        self._token = token
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
        self._code: int | None = None  # the close code, once closing
        self._reason = ""
        self._ending: int | None = None  # input ended: the close code to send once the inbox is handled
        self._drop_input = False  # the server is closing: frames not yet handled are dropped
        self._close_sent = False
        self._lost = False
        self._closed: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None  # auth timeout, then the close grace
        self._beat = 0
        self._started = 0.0
        self._registered = False
        self._removed = False
        self._unauthenticated = 0

    # -- Session ---------------------------------------------------------------------------------

    @property
    def registered(self) -> bool:
        """Authenticated and known to the hub."""
        return self._registered

    @property
    def closing(self) -> bool:
        return self._code is not None

    @property
    def queued(self) -> tuple[int, int]:
        queue = self._queue
        return (len(queue), self._queued_bytes) if queue else (0, 0)

    def push(self, frame: Frame) -> None:
        if self._code is not None:
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

    def close(self, code: int, reason: str = "", flush: bool = True) -> None:
        """A close the server starts (or the one answering the end of input)."""
        if self._code is not None:
            return
        self._code = code
        self._reason = reason
        if self._lost:
            return
        if self._ending is None:
            self._drop_input = True
            self._inbox = None
            self._read_more()  # the client's close frame must still be read
        if not flush:
            self._out = None
            self._queue = None
            self._queued_bytes = 0
        if not self._queue:
            self._send_close()
        self._arm(CLOSE_GRACE_S, self.abort)

    async def wait_closed(self) -> None:
        if self._lost:
            return
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._closed)

    def abort(self) -> None:
        """Cut the socket at once (the peer did not finish closing, or stopped answering)."""
        if self._transport is not None and not self._lost:
            self._transport.abort()

    # -- writing ---------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the bytes gathered in this loop iteration, then what waits in the queue."""
        out = self._out
        if out is not None:
            self._out = None
            if self._transport is not None and not self._lost:
                self._transport.write(out)
        if self._queue and not self._paused:
            self._drain()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._pong is not None and self._transport is not None:
            pong, self._pong = self._pong, None
            self._transport.write(websocket.frame(websocket.OP_PONG, pong))
        self._drain()

    def _drain(self) -> None:
        """Write queued frames, up to 64 KiB a write, until the transport pushes back; once the
        queue is empty, the close frame of a close waiting for it."""
        queue = self._queue
        transport = self._transport
        if transport is None or self._lost:
            return
        while queue and not self._paused:
            size = 0
            chunks: list[bytes] = []
            while queue and size < _OUT_MAX:
                chunk = queue.popleft()
                chunks.append(chunk)
                size += len(chunk)
            self._queued_bytes -= size
            transport.write(b"".join(chunks))
        if not queue:
            self._queue = None
            if self._code is not None and not self._close_sent:
                self._send_close()

    def _send_close(self) -> None:
        """Write what is gathered, then the close frame. With input ended the socket is closed
        now; otherwise the client's close frame closes it."""
        self.flush()
        if self._close_sent:
            return
        self._close_sent = True
        if self._transport is not None and not self._lost:
            code = self._code if self._code is not None else NORMAL
            self._transport.write(websocket.close_frame(code, self._reason))
            if self._reader is None:
                self._transport.close()

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
        token = self._token
        self._token = None
        if token is None:
            self._arm(self._front.settings.ws_auth_timeout, self._auth_expired)
            return
        try:
            claims = self._front.tokens.verify(token)
        except TokenError as exc:
            self._refuse(f"The token is not valid ({exc}); refresh it and reconnect.", None)
            return
        self._task = asyncio.get_running_loop().create_task(
            self._serve(self._register(claims.user_id, None)), name="gigwire-ws-frames"
        )

    def data_received(self, data: bytes) -> None:
        self._beat = 0
        reader = self._reader
        if reader is None:
            return
        for opcode, payload in reader.feed(data):
            if opcode in (websocket.OP_TEXT, websocket.OP_BINARY):
                if not self._drop_input:
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
        self._lost = True
        if self._code is None:
            self._code = _ABNORMAL
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
        if not self._registered:
            self._inbox = None  # frames received whole are still handled for a session
        self._front.connections.discard(self)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        if self._task is None:
            self._forget()
        if self._handover is not None:
            handover, self._handover = self._handover, None
            handover.connection_lost(exc)

    def _answer_ping(self, payload: bytes) -> None:
        """Answer a ping; while the transport pushes back only the latest is kept (RFC 6455
        5.5.3), so a ping flood cannot grow the write buffer."""
        if self._close_sent or self._transport is None:
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
        if self._close_sent:  # the answer to our close: done
            if self._transport is not None:
                self._transport.close()
            return
        if self._ending is None:
            self._ending = code if code not in (1005, _ABNORMAL) else NORMAL
            self._reason = reason
            self._arm(CLOSE_GRACE_S, self.abort)
        if self._task is None and not self._inbox:
            self.close(self._ending, reason)

    def beat(self) -> None:
        """One liveness sweep (see WsFront._sweep)."""
        if self._lost:
            return
        beat = self._beat
        if beat == 0:
            self._beat = 1
        elif beat == 1:
            self._beat = 2
            if self._transport is not None and not self._close_sent:
                self._transport.write(websocket.PING)
        else:
            log.info("no answer to ping; connection cut", extra={"session": self.session_id})
            self.abort()

    # -- client frames ---------------------------------------------------------------------------

    async def _serve(self, first: Awaitable[None] | None = None) -> None:
        """Handle waiting client frames one at a time, in order, until none is left (after `first`,
        the registration of a token given in the query). Yields to the loop every few frames, so a
        burst of frames that need no I/O does not hold it."""
        handled = 0
        try:
            if first is not None:
                await first
            while (inbox := self._inbox) and not self._drop_input:
                payload = inbox.popleft()
                if len(inbox) <= _INBOX_RESUME and self._reader is not None:
                    self._read_more()
                if self._registered:
                    if (frame := self._parsed(payload)) is not None:
                        await self._dispatch(frame)
                elif self._lost:
                    break
                else:
                    await self._unauthenticated_frame(payload)
                handled += 1
                if handled % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        except Exception:
            log.exception("frame handling failed", extra={"session": self.session_id})
            self.close(1011, "internal error")
        finally:
            self._task = None
            if not self._inbox:
                self._inbox = None  # an idle connection keeps no deque (about 600 bytes)
            if self._lost:
                self._forget()
            elif self._ending is not None and self._inbox is None:
                self.close(self._ending, self._reason)

    def _forget(self) -> None:
        """After the loss: remove the session from the hub, once, after its last frame was handled."""
        if self._registered and not self._removed:
            self._removed = True
            self._front.hub.forget(self)

    def _auth_expired(self) -> None:
        self._timer = None
        if not self._registered and self._code is None:
            self.push(HubError("unauthorized", "No AUTHENTICATE in time; reconnect and send it.").frame())
            self.close(AUTH_TIMEOUT, "authentication timeout")

    def _refuse(self, message: str, ref: str | None) -> None:
        self.push(HubError("unauthorized", message).frame(ref))
        self.close(UNAUTHORIZED, "unauthorized")

    async def _register(self, user_id: str, ref: str | None) -> None:
        """Authenticated: join the hub (its user feed), then greet with AUTHENTICATED, which is
        always the session's first event. A connection already ending is not registered; one
        authenticating while the server shuts down is closed with 1001."""
        if self._code is not None or self._ending is not None:
            return
        if not self._front.accepting:
            self.close(GOING_AWAY, "server going away: reconnect")
            return
        if self._timer is not None:  # the authentication timeout
            self._timer.cancel()
            self._timer = None
        self.user_id = user_id
        self._registered = True
        await self._front.hub.add_session(self)
        hello = {"userId": user_id, "sessionId": self.session_id, "serverTime": now_ms()}
        self.push(Frame.encode("AUTHENTICATED", hello, ref))

    async def _unauthenticated_frame(self, payload: str | bytes) -> None:
        self._unauthenticated += 1
        if self._unauthenticated > _MAX_UNAUTHENTICATED_FRAMES:
            self._refuse("Too many frames before AUTHENTICATE.", None)
            return
        frame = self._parsed(payload)
        if frame is None:
            return
        if frame.type != "AUTHENTICATE":
            self.push(HubError("unauthorized", "Send AUTHENTICATE {token} first.").frame(frame.ref))
            return
        try:
            claims = self._front.tokens.verify(frame.token)
        except TokenError as exc:
            self._refuse(f"The token is not valid ({exc}); refresh it and reconnect.", frame.ref)
            return
        await self._register(claims.user_id, frame.ref)

    def _parsed(self, payload: str | bytes) -> ClientFrame | None:
        """The client frame in `payload`, counted; None when it is not one (answered with ERROR)."""
        if isinstance(payload, bytes):
            self.metrics.frame_in("ws", "invalid")
            self.push(HubError("bad_request", "Frames are JSON text, not binary.").frame())
            return None
        try:
            frame = parse(payload)
        except BadFrame as exc:
            self.metrics.frame_in("ws", "invalid")
            self.push(exc.frame(exc.ref))
            return None
        self.metrics.frame_in("ws", frame.type)
        return frame

    async def _dispatch(self, frame: ClientFrame) -> None:
        if frame.type == "AUTHENTICATE":
            # A fresh token on a live connection (e.g. after a refresh): same user only.
            try:
                fresh = self._front.tokens.verify(frame.token)
            except TokenError as exc:
                self.push(HubError("unauthorized", f"The token is not valid ({exc}).").frame(frame.ref))
                self.close(UNAUTHORIZED, "unauthorized")
                return
            if fresh.user_id != self.user_id:
                self.push(HubError("forbidden", "A connection serves one user; reconnect.").frame(frame.ref))
                return
            data = {"userId": fresh.user_id, "sessionId": self.session_id, "serverTime": now_ms()}
            self.push(Frame.encode("AUTHENTICATED", data, frame.ref))
            return
        try:
            ack = await handlers.handle(self._front.hub, self, frame)
        except HubError as exc:
            self.push(exc.frame(frame.ref))
            return
        except Exception:
            log.exception("event failed", extra={"type": frame.type})
            self.push(HubError("internal", "The server failed; nothing was stored.").frame(frame.ref))
            return
        if frame.ref is not None and frame.type != "PING":
            self.push(Frame.encode("ACK", ack or {}, frame.ref))


async def ws_handler(request: web.Request) -> web.StreamResponse:
    """GET /ws through aiohttp: an upgrade that did not come through hub.door (it arrived on a
    connection that served other requests first), or a request that is not a valid upgrade (400).
    A valid one is answered 101 here and its socket handed to a WsConnection; aiohttp is told of
    the connection's loss when it happens."""
    front = request.app[WS_FRONT]
    if not front.accepting:
        return _refusal(503, "unavailable", "The server is shutting down; reconnect.", {"Retry-After": "1"})
    headers = {name.lower(): value for name, value in request.headers.items()}
    problem = websocket.upgrade_problem(request.method, headers)
    transport = request.transport
    if problem is not None or transport is None or transport.is_closing():
        return _refusal(400, "bad_request", f"Not a WebSocket upgrade: {problem or 'connection closing'}.")
    upgrade = websocket.Upgrade(request.path, dict(request.query), headers["sec-websocket-key"])
    # Bytes that followed the head on this socket (a client that did not wait for the 101) are held
    # by aiohttp's protocol; hand them over too.
    rest = bytes(getattr(request.protocol, "_message_tail", b""))
    conn = front.accept(transport, upgrade, rest, handover=request.protocol)
    await conn.wait_closed()
    return web.Response()  # not written: the socket is closed


def _refusal(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """An HTTP refusal of /ws in the REST error shape (PROTOCOL.md, seeds' error conventions)."""
    body = {"success": False, "error": {"code": code, "message": message}}
    return web.json_response(body, status=status, headers=headers)


def setup_realtime(app: web.Application) -> None:
    """Mount the realtime hub: /ws, /metrics, the hub's deliver on the broker, presence refresh,
    and on shutdown every session closed with 1001 after its queue is flushed."""
    settings: Settings = app[SETTINGS]
    metrics = HubMetrics()
    hub = Hub(settings, metrics)
    app[METRICS] = metrics
    app[HUB] = hub
    app[DELIVER].append(hub.deliver)

    async def realtime(app: web.Application) -> AsyncIterator[None]:
        hub.start(app[POOL], app[BROKER], Presence(app[STORE], settings.presence_ttl))
        assert hub.presence is not None
        hub.spawn(hub.presence.keep_fresh(hub.presence_entries), "gigwire-presence")
        front = app[WS_FRONT] = WsFront(hub, app[TOKENS], settings, metrics)
        front.start()
        yield
        await hub.shutdown()
        await front.stop()
        await hub.stop()

    async def on_shutdown(app: web.Application) -> None:
        if WS_FRONT in app:
            app[WS_FRONT].close_waiting()
        await hub.shutdown()

    app.cleanup_ctx.append(realtime)
    app.on_shutdown.append(on_shutdown)
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/metrics", metrics_handler)
