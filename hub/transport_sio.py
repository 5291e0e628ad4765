"""/socket.io/: the Socket.IO transport of the hub (PROTOCOL.md), for web apps using the stock
socket.io-client 4.x. A Socket.IO connection is one more kind of hub session: same tokens, events,
channels, rate limit, queue bound and fan-out as /ws. There is no second fan-out path: no Socket.IO
rooms and no Socket.IO Redis manager; the hub's deliver loop pushes the shared Frame into each
session's queue, and the session's writer hands the frame's Engine.IO packet, built once per frame
and shared by every recipient, straight to that connection's Engine.IO socket.

Mapping: a client event is `emit(type, data, ack)`; the ack callback receives the ACK data, or
`{"error": {"code", "message"[, "retryAfterMs"]}}`. Acks travel through the session's queue, so an
ack follows whatever its event sent first (a SUBSCRIBE_CHAT's replay arrives before its ack).
Server events are emitted as `(type, data)`. A refused handshake token gets a CONNECT_ERROR whose
`data` is `{"code": "unauthorized", "message"}`. Closes that ask the client to come back (1001
going away, 1013 too slow) end the Engine.IO transport, so socket.io-client reconnects by itself;
4401/4408 disconnect the namespace, which socket.io-client does not retry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import engineio.packet
import orjson
import socketio
from aiohttp import web

from hub import handlers
from hub.frame import Frame, now_ms
from hub.hub import Hub
from hub.keys import HUB, SETTINGS, TOKENS
from hub.metrics import METRICS, HubMetrics
from hub.protocol import BadFrame, ClientFrame, HubError, parse
from hub.session import AUTH_TIMEOUT, UNAUTHORIZED, QueuedSession
from hub.tokens import Claims, TokenError

log = logging.getLogger("gigwire.sio")

TRANSPORT = "sio"
NAMESPACE = "/"
SIO_SERVER: web.AppKey[socketio.AsyncServer] = web.AppKey("sio_server")

_MAX_UNAUTHENTICATED_EVENTS = 50
# Engine.IO's own per-socket queue is unbounded: the writer waits while it holds more than this, so a
# slow reader backs up into the session's bounded queue, where the hub's limit applies.
_EIO_QUEUE_SOFT_MAX = 32
_EIO_DRAIN_POLL_S = 0.005
_NAMESPACE_CLOSES = frozenset({UNAUTHORIZED, AUTH_TIMEOUT})


def event_packet(frame: Frame) -> engineio.packet.Packet:
    """The Engine.IO message carrying `frame` as a Socket.IO EVENT `[type, data]` on namespace "/".
    Engine.IO caches a packet's encoding, so one packet object serves every recipient."""
    parsed = frame.parsed
    args = [frame.type, parsed["data"]] if parsed.get("data") is not None else [frame.type]
    return engineio.packet.Packet(engineio.packet.MESSAGE, data="2" + orjson.dumps(args).decode())


def ack_frame(ack_id: int, data: dict[str, Any]) -> Frame:
    """A Frame holding a Socket.IO ACK of the client's event `ack_id`, to queue like any frame."""
    text = "3" + str(ack_id) + orjson.dumps([data]).decode()
    frame = Frame(text.encode(), "ACK")
    frame.for_transport(TRANSPORT, lambda _f: engineio.packet.Packet(engineio.packet.MESSAGE, data=text))
    return frame


def error_ack(exc: HubError) -> dict[str, Any]:
    """The ack data of a refused event."""
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.retry_after_ms is not None:
        error["retryAfterMs"] = exc.retry_after_ms
    return {"error": error}


class SioSession(QueuedSession):
    """A hub session over one Socket.IO connection (namespace "/")."""

    transport = TRANSPORT

    def __init__(self, server: GigwireSocketIO, sid: str, eio_sid: str, user_id: str) -> None:
        super().__init__(user_id, server.app[SETTINGS], server.app[METRICS])
        self.server = server
        self.sid = sid
        self.eio_sid = eio_sid

    async def _write(self, frame: Frame) -> None:
        socket = self.server.eio.sockets.get(self.eio_sid)
        if socket is None or socket.closed:
            raise ConnectionError("the Socket.IO connection is gone")
        # Straight into Engine.IO's outgoing queue: `socket.send` adds a ping-timeout check and a log
        # call per packet, which Engine.IO's own ping loop and writer already cover.
        socket.queue.put_nowait(frame.for_transport(TRANSPORT, event_packet))
        # Engine.IO's queue offers no "below N" event to await; a short poll, only while it is full.
        while socket.queue.qsize() > _EIO_QUEUE_SOFT_MAX and not socket.closed:  # noqa: ASYNC110
            await asyncio.sleep(_EIO_DRAIN_POLL_S)

    async def _shutdown(self, code: int, reason: str) -> None:
        if code in _NAMESPACE_CLOSES:
            await self.server.disconnect(self.sid, namespace=NAMESPACE)
        else:
            await self.server.eio.disconnect(self.eio_sid)

    def _abort(self) -> None:
        socket = self.server.eio.sockets.get(self.eio_sid)
        if socket is not None and not self._closed.is_set():
            socket.queue.put_nowait(None)  # ends Engine.IO's writer, which closes the WebSocket
            self.server.spawn(socket.close(wait=False, abort=True))


@dataclass
class _Connection:
    """One Socket.IO connection, authenticated (`session`) or waiting for AUTHENTICATE."""

    sid: str
    eio_sid: str
    claims: Claims | None = None
    session: SioSession | None = None
    writer: asyncio.Task[None] | None = None
    auth_timer: asyncio.TimerHandle | None = None
    unauthenticated_events: int = 0
    closed: bool = False


class GigwireSocketIO(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's AsyncServer with events routed into the hub. Two of its hooks are extended:
    `_handle_connect`, to open the session only once the client holds its CONNECT (so nothing is
    sent ahead of it), and `_handle_event`, to run one connection's events one at a time, in order,
    like /ws, and to send each ack through the session's queue."""

    def __init__(self, app: web.Application) -> None:
        settings = app[SETTINGS]

        def origin_ok(origin: str | None, environ: dict[str, Any]) -> bool:
            own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
            return origin is None or origin in (own, settings.client_url)

        super().__init__(
            async_mode="aiohttp",
            cors_allowed_origins=origin_ok,
            cors_credentials=True,
            max_http_buffer_size=settings.ws_max_frame_bytes,
            ping_interval=25,
            ping_timeout=20,
            async_handlers=False,
        )
        self.app = app
        self.connections: dict[str, _Connection] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.on("connect", self._on_connect, namespace=NAMESPACE)
        self.on("disconnect", self._on_disconnect, namespace=NAMESPACE)

    @property
    def hub(self) -> Hub:
        return self.app[HUB]

    @property
    def metrics(self) -> HubMetrics:
        return self.app[METRICS]

    def spawn(self, coro: Any) -> None:
        """Run `coro` in the background, referenced until done."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- connecting --------------------------------------------------------------------------------

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        if not self.hub.accepting:
            raise socketio.exceptions.ConnectionRefusedError(
                "shutting down; reconnect", {"code": "internal", "message": "The server is restarting."}
            )
        eio_sid = self.manager.eio_sid_from_sid(sid, NAMESPACE)
        conn = _Connection(sid, eio_sid)
        token = auth.get("token") if isinstance(auth, dict) else None
        if token is not None:
            try:
                conn.claims = self.app[TOKENS].verify(token)
            except TokenError as exc:
                message = f"The token is not valid ({exc}); refresh it and reconnect."
                raise socketio.exceptions.ConnectionRefusedError(
                    message, {"code": "unauthorized", "message": message}
                ) from None
        else:
            delay = self.app[SETTINGS].ws_auth_timeout
            conn.auth_timer = asyncio.get_running_loop().call_later(
                delay, lambda: self.spawn(self._auth_expired(conn))
            )
        self.connections[sid] = conn
        return True

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        await super()._handle_connect(eio_sid, namespace, data)
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace or NAMESPACE)
        conn = self.connections.get(sid) if sid is not None else None
        if conn is not None and conn.claims is not None and conn.session is None:
            await self._open(conn, conn.claims, None)

    async def _open(self, conn: _Connection, claims: Claims, ack_id: int | None) -> None:
        """Make the connection a hub session: register it, then send AUTHENTICATED (and the ack)."""
        if conn.auth_timer is not None:
            conn.auth_timer.cancel()
        session = SioSession(self, conn.sid, conn.eio_sid, claims.user_id)
        conn.claims, conn.session = claims, session
        conn.writer = asyncio.get_running_loop().create_task(session.run_writer(), name="gigwire-sio-writer")
        await self.hub.add_session(session)
        if conn.closed:  # the client left while we registered
            await self._close(conn)
            return
        data = {"userId": claims.user_id, "sessionId": session.session_id, "serverTime": now_ms()}
        session.push(Frame.encode("AUTHENTICATED", data))
        if ack_id is not None:
            session.push(ack_frame(ack_id, data))

    async def _auth_expired(self, conn: _Connection) -> None:
        if conn.session is None and not conn.closed:
            await self._refuse(conn, "No AUTHENTICATE in time; reconnect and send it.", None)

    async def _refuse(self, conn: _Connection, message: str, ack_id: int | None) -> None:
        """Answer `unauthorized` to a connection without a session, then disconnect it."""
        error = HubError("unauthorized", message)
        if ack_id is not None:
            await self._send_direct(conn, ack_frame(ack_id, error_ack(error)))
        await self._send_direct(conn, error.frame())
        await self.disconnect(conn.sid, namespace=NAMESPACE)

    async def _send_direct(self, conn: _Connection, frame: Frame) -> None:
        """Send before a session (and its queue) exists."""
        with contextlib.suppress(Exception):
            await self.eio.send_packet(conn.eio_sid, frame.for_transport(TRANSPORT, event_packet))

    # -- events ----------------------------------------------------------------------------------

    async def _handle_event(self, eio_sid: str, namespace: str | None, ack_id: int | None, data: Any) -> None:
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace or NAMESPACE)
        conn = self.connections.get(sid) if sid is not None else None
        if conn is None or conn.closed or not self.manager.is_connected(sid, namespace or NAMESPACE):
            return
        try:
            frame = _client_frame(data)
        except BadFrame as exc:
            self.metrics.frame_in(TRANSPORT, "invalid")
            await self._answer(conn, ack_id, error=exc)
            return
        self.metrics.frame_in(TRANSPORT, frame.type)
        session = conn.session
        if session is None:
            await self._unauthenticated(conn, frame, ack_id)
            return
        if frame.type == "AUTHENTICATE":
            await self._reauthenticate(conn, session, frame, ack_id)
            return
        try:
            ack = await handlers.handle(self.hub, session, frame)
        except HubError as exc:
            await self._answer(conn, ack_id, error=exc)
            return
        except Exception:
            log.exception("event failed", extra={"type": frame.type})
            await self._answer(
                conn, ack_id, error=HubError("internal", "The server failed; nothing was stored.")
            )
            return
        await self._answer(conn, ack_id, ack=ack or {})

    async def _answer(
        self,
        conn: _Connection,
        ack_id: int | None,
        ack: dict[str, Any] | None = None,
        error: HubError | None = None,
    ) -> None:
        """The ack (when the client asked for one), else, for an error, an ERROR event."""
        if ack_id is not None:
            frame = ack_frame(ack_id, error_ack(error) if error is not None else (ack or {}))
        elif error is not None:
            frame = error.frame()
        else:
            return
        if conn.session is not None:
            conn.session.push(frame)
        else:
            await self._send_direct(conn, frame)

    async def _unauthenticated(self, conn: _Connection, frame: ClientFrame, ack_id: int | None) -> None:
        if frame.type != "AUTHENTICATE":
            conn.unauthenticated_events += 1
            if conn.unauthenticated_events > _MAX_UNAUTHENTICATED_EVENTS:
                await self._refuse(conn, "Too many events before AUTHENTICATE.", ack_id)
                return
            await self._answer(
                conn, ack_id, error=HubError("unauthorized", "Send AUTHENTICATE {token} first.")
            )
            return
        try:
            claims = self.app[TOKENS].verify(frame.token)
        except TokenError as exc:
            await self._refuse(conn, f"The token is not valid ({exc}); refresh it and reconnect.", ack_id)
            return
        await self._open(conn, claims, ack_id)

    async def _reauthenticate(
        self, conn: _Connection, session: SioSession, frame: ClientFrame, ack_id: int | None
    ) -> None:
        """A fresh token on a live connection (after a refresh): the same user only."""
        try:
            fresh = self.app[TOKENS].verify(frame.token)
        except TokenError as exc:
            await self._answer(
                conn, ack_id, error=HubError("unauthorized", f"The token is not valid ({exc}).")
            )
            session.close(UNAUTHORIZED, "unauthorized")
            return
        if fresh.user_id != session.user_id:
            await self._answer(
                conn, ack_id, error=HubError("forbidden", "A connection serves one user; reconnect.")
            )
            return
        data = {"userId": fresh.user_id, "sessionId": session.session_id, "serverTime": now_ms()}
        session.push(Frame.encode("AUTHENTICATED", data))
        await self._answer(conn, ack_id, ack=data)

    # -- leaving ---------------------------------------------------------------------------------

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self.connections.pop(sid, None)
        if conn is not None:
            conn.closed = True
            await self._close(conn)

    async def _close(self, conn: _Connection) -> None:
        if conn.auth_timer is not None:
            conn.auth_timer.cancel()
        session = conn.session
        if session is None:
            return
        session.close(1000)
        with contextlib.suppress(Exception):
            await self.hub.remove_session(session)
        # A namespace close (4401/4408) starts in the writer itself: it must not wait for itself.
        if conn.writer is not None and conn.writer is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await conn.writer

    async def close_unauthenticated(self) -> None:
        """On shutdown: drop the connections that never authenticated (sessions close with the hub)."""
        for conn in list(self.connections.values()):
            if conn.session is None:
                with contextlib.suppress(Exception):
                    await self.disconnect(conn.sid, namespace=NAMESPACE)


def _client_frame(data: Any) -> ClientFrame:
    """A Socket.IO event `[type, data?]` as a validated client frame (the same rules as /ws)."""
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise BadFrame("bad_request", "An event is a name and one data object.")
    body: dict[str, Any] = {"type": data[0]}
    if len(data) > 1:
        body["data"] = data[1]
    try:
        raw = orjson.dumps(body)
    except TypeError:  # e.g. a lone surrogate in a string: not representable as UTF-8 JSON
        raise BadFrame("bad_request", "The event's data is not valid JSON text.") from None
    return parse(raw)


def setup_socketio(app: web.Application) -> None:
    """Attach the Socket.IO transport at /socket.io/ to an app that has the hub (setup_realtime)."""
    server = GigwireSocketIO(app)
    server.attach(app, socketio_path="socket.io")
    app[SIO_SERVER] = server

    async def on_shutdown(app: web.Application) -> None:
        await server.close_unauthenticated()

    app.on_shutdown.append(on_shutdown)
