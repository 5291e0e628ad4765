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
4401/4408 disconnect the namespace, which socket.io-client does not retry.

What a connection is answered, and when it is refused, is decided by hub.session_flow, as for /ws;
this module maps those answers onto Socket.IO. Its uses of python-socketio's and python-engineio's
internals are in hub.compat_socketio."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
import socketio
from aiohttp import web

from hub import compat_socketio as sio_compat
from hub import feed, revoke
from hub.codes import AUTH_TIMEOUT, NORMAL, UNAUTHORIZED
from hub.compat_socketio import HookedServer, Packet, message_packet
from hub.frame import Frame
from hub.hub import Hub
from hub.keys import HUB, SETTINGS, TOKENS
from hub.metrics import METRICS, HubMetrics
from hub.protocol import BadFrame, ClientFrame, HubError, parse
from hub.session import QueuedSession, Reply
from hub.session_flow import Realm, SessionFlow
from hub.tokens import Claims

log = logging.getLogger("gigwire.sio")

TRANSPORT = "sio"
NAMESPACE = "/"
SIO_SERVER: web.AppKey[socketio.AsyncServer] = web.AppKey("sio_server")

# Engine.IO's own per-socket queue is unbounded: the writer waits while it holds more than this, so a
# slow reader backs up into the session's bounded queue, where the hub's limit applies.
_EIO_QUEUE_SOFT_MAX = 32
_EIO_DRAIN_POLL_S = 0.005
_NAMESPACE_CLOSES = frozenset({UNAUTHORIZED, AUTH_TIMEOUT})


def event_packet(frame: Frame) -> Packet:
    """The Engine.IO message carrying `frame` as a Socket.IO EVENT `[type, data]` on namespace "/".
    Engine.IO caches a packet's encoding, so one packet object serves every recipient."""
    parsed = frame.parsed
    args = [frame.type, parsed["data"]] if parsed.get("data") is not None else [frame.type]
    return message_packet("2" + orjson.dumps(args).decode())


def ack_frame(ack_id: int, data: dict[str, Any]) -> Frame:
    """A Frame holding a Socket.IO ACK of the client's event `ack_id`, to queue like any frame."""
    text = "3" + str(ack_id) + orjson.dumps([data]).decode()
    frame = Frame(text.encode(), "ACK")
    frame.for_transport(TRANSPORT, lambda _f: message_packet(text))
    return frame


def error_ack(exc: HubError) -> dict[str, Any]:
    """The ack data of a refused event."""
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.retry_after_ms is not None:
        error["retryAfterMs"] = exc.retry_after_ms
    return {"error": error}


class SioSession(QueuedSession):
    """One Socket.IO connection (namespace "/"), from its CONNECT on: the outgoing side of its hub
    session (its queue's writer runs from the start) and its session flow. Before authentication
    its `user_id` is empty and the hub does not know it."""

    __slots__ = ("admitted", "eio_sid", "flow", "server", "sid", "writer")

    transport = TRANSPORT

    def __init__(self, server: GigwireSocketIO, sid: str, eio_sid: str) -> None:
        super().__init__("", server.app[SETTINGS], server.app[METRICS])
        self.server = server
        self.sid = sid
        self.eio_sid = eio_sid
        self.flow = SessionFlow(server.realm, self)
        self.admitted: Claims | None = None  # a handshake token's claims, joined once CONNECT is sent
        self.writer: asyncio.Task[None] | None = None

    def answer(
        self,
        reply: Reply,
        ack: dict[str, Any] | None = None,
        error: HubError | None = None,
        *,
        echoed: bool = False,
        refusal: bool = False,
    ) -> None:
        """The ack (ACK data or `{error}`) when the client asked for one; an error without an ack,
        or a refusal, as an ERROR event too."""
        ack_id = reply if isinstance(reply, int) else None
        if ack_id is not None:
            self.push(ack_frame(ack_id, error_ack(error) if error is not None else (ack or {})))
        if error is not None and (ack_id is None or refusal):
            self.push(error.frame())

    async def _write(self, frame: Frame) -> None:
        socket = self.server.eio_socket(self.eio_sid)
        if socket is None or sio_compat.is_closed(socket):
            raise ConnectionError("the Socket.IO connection is gone")
        # Straight into Engine.IO's outgoing queue: `socket.send` adds a ping-timeout check and a log
        # call per packet, which Engine.IO's own ping loop and writer already cover.
        sio_compat.enqueue(socket, frame.for_transport(TRANSPORT, event_packet))
        # Engine.IO's queue offers no "below N" event to await; a short poll, only while it is full.
        while sio_compat.backlog(socket) > _EIO_QUEUE_SOFT_MAX and not sio_compat.is_closed(socket):  # noqa: ASYNC110
            await asyncio.sleep(_EIO_DRAIN_POLL_S)

    async def _shutdown(self, code: int, reason: str) -> None:
        if code in _NAMESPACE_CLOSES:
            await self.server.disconnect(self.sid, namespace=NAMESPACE)
        else:
            await self.server.eio.end(self.eio_sid)

    def _abort(self) -> None:
        socket = self.server.eio_socket(self.eio_sid)
        if socket is not None and not self._closed.is_set():
            self.server.spawn(sio_compat.abort(socket))


class GigwireSocketIO(HookedServer):
    """python-socketio's AsyncServer with events routed into the hub: a connection's session opens
    only once the client holds its CONNECT (so nothing is sent ahead of it), and one connection's
    events run one at a time, in order, like /ws, each ack sent through the session's queue."""

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
        self.sessions: dict[str, SioSession] = {}
        self._realm: Realm | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.on("connect", self._on_connect, namespace=NAMESPACE)
        self.on("disconnect", self._on_disconnect, namespace=NAMESPACE)

    @property
    def hub(self) -> Hub:
        return self.app[HUB]

    @property
    def metrics(self) -> HubMetrics:
        return self.app[METRICS]

    @property
    def realm(self) -> Realm:
        if self._realm is None:
            settings = self.app[SETTINGS]
            self._realm = Realm(self.hub, self.app[TOKENS], settings.ws_auth_timeout, revoke.guard(self.hub))
        return self._realm

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
        session = SioSession(self, sid, self.eio_sid_of(sid, NAMESPACE))
        token = auth.get("token") if isinstance(auth, dict) else None
        session.flow.since_feed_seq = (
            feed.parse_since(auth.get("sinceFeedSeq")) if isinstance(auth, dict) else None
        )
        if token is not None:
            try:
                session.admitted = await session.flow.vouch(token)
            except HubError as exc:
                raise socketio.exceptions.ConnectionRefusedError(
                    exc.message, {"code": exc.code, "message": exc.message}
                ) from None
        else:
            session.flow.open(None)
        session.writer = asyncio.get_running_loop().create_task(
            session.run_writer(), name="gigwire-sio-writer"
        )
        self.sessions[sid] = session
        return True

    async def connected(self, eio_sid: str, namespace: str) -> None:
        sid = self.sid_of(eio_sid, namespace)
        session = self.sessions.get(sid) if sid is not None else None
        if session is not None and session.admitted is not None:
            claims, session.admitted = session.admitted, None
            await session.flow.join(claims, vouched=True)

    # -- events ----------------------------------------------------------------------------------

    async def event(self, eio_sid: str, namespace: str, ack_id: int | None, data: Any) -> None:
        sid = self.sid_of(eio_sid, namespace)
        session = self.sessions.get(sid) if sid is not None else None
        if session is None or sid is None or not self.is_connected(sid, namespace):
            return
        frame: ClientFrame | BadFrame
        try:
            frame = _client_frame(data)
        except BadFrame as exc:
            frame = exc
        await session.flow.on_frame(frame, ack_id)

    # -- leaving ---------------------------------------------------------------------------------

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        session = self.sessions.pop(sid, None)
        if session is None:
            return
        session.flow.on_lost()
        session.close(NORMAL)
        # A namespace close (4401/4408) starts in the writer itself: it must not wait for itself.
        if session.writer is not None and session.writer is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await session.writer

    async def close_unauthenticated(self) -> None:
        """On shutdown: drop the connections that never authenticated (sessions close with the hub)."""
        for session in list(self.sessions.values()):
            if not session.flow.joined:
                with contextlib.suppress(Exception):
                    await self.disconnect(session.sid, namespace=NAMESPACE)


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
        await server.stop_engineio()  # Engine.IO's service task and sockets, bounded (compat_socketio)

    app.on_shutdown.append(on_shutdown)
