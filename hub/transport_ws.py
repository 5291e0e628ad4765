"""GET /ws: the raw WebSocket transport (PROTOCOL.md), and `setup_realtime`, which mounts the hub
(/ws, /metrics, its start, stop and shutdown) on the web app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSMsgType, web

from hub import handlers
from hub.app import DELIVER
from hub.frame import Frame, now_ms
from hub.hub import Hub
from hub.keys import BROKER, HUB, POOL, SETTINGS, STORE, TOKENS
from hub.metrics import METRICS, HubMetrics, metrics_handler
from hub.presence import Presence
from hub.protocol import BadFrame, ClientFrame, HubError, parse
from hub.session import AUTH_TIMEOUT, UNAUTHORIZED, QueuedSession, schedule_flush
from hub.settings import Settings
from hub.tokens import Claims, TokenError

log = logging.getLogger("gigwire.ws")

_MAX_UNAUTHENTICATED_FRAMES = 50
_DIRECT_MAX = 64 * 1024  # bytes a socket may hold unsent before frames go through the writer task


class WsSession(QueuedSession):
    """A session over one aiohttp WebSocketResponse: frames go out as text, bytes as encoded once."""

    transport = "ws"

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, user_id: str, app: web.Application):
        super().__init__(user_id, app[SETTINGS], app[METRICS])
        self.ws = ws
        self.request = request
        self._out: bytearray | None = None  # frames taken by `_direct`, written at the loop's turn

    async def _write(self, frame: Frame) -> None:
        await self.ws.send_frame(frame.data, WSMsgType.TEXT)

    def _direct(self, frame: Frame) -> bool:
        # The whole WebSocket frame is built once per Frame and shared by every recipient (server
        # frames are unmasked; sent uncompressed, which permessage-deflate allows per message).
        # Only while the socket keeps up: past the high-water mark the writer's awaited path
        # (aiohttp's flow control) takes over.
        transport = self.request.transport
        if transport is None or transport.is_closing() or transport.get_write_buffer_size() > _DIRECT_MAX:
            return False
        out = self._out
        if out is None:
            self._out = out = bytearray()
            schedule_flush(self)
        elif len(out) > _DIRECT_MAX:
            return False
        out += frame.for_transport("ws-wire", ws_wire)
        return True

    def _flush_direct(self) -> None:
        out = self._out
        if out is not None:
            self._out = None
            transport = self.request.transport
            if transport is not None and not transport.is_closing():
                transport.write(out)

    def _discard_direct(self) -> None:
        self._out = None

    async def _shutdown(self, code: int, reason: str) -> None:
        await self.ws.close(code=code, message=reason.encode()[:120])

    def _abort(self) -> None:
        transport = self.request.transport
        if transport is not None and not self._closed.is_set():
            transport.abort()


def ws_wire(frame: Frame) -> bytes:
    """The complete unmasked WebSocket text frame (RFC 6455 5.2) carrying `frame.data`."""
    data = frame.data
    size = len(data)
    if size < 126:
        return bytes((0x81, size)) + data
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + data
    return struct.pack("!BBQ", 0x81, 127, size) + data


async def _send(ws: web.WebSocketResponse, frame: Frame) -> None:
    """Write one frame directly (before a session exists)."""
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_frame(frame.data, WSMsgType.TEXT)


async def _refuse(ws: web.WebSocketResponse, message: str, ref: str | None) -> None:
    await _send(ws, HubError("unauthorized", message).frame(ref))
    await ws.close(code=UNAUTHORIZED, message=b"unauthorized")


async def _authenticate(
    ws: web.WebSocketResponse, request: web.Request, metrics: HubMetrics
) -> tuple[Claims, str | None] | None:
    """The caller's claims from `?token=` or the first AUTHENTICATE frame; None once the connection
    is closed (4401 for a bad token, 4408 after the timeout)."""
    codec = request.app[TOKENS]
    token = request.query.get("token")
    if token is not None:
        try:
            return codec.verify(token), None
        except TokenError as exc:
            await _refuse(ws, f"The token is not valid ({exc}); refresh it and reconnect.", None)
            return None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + request.app[SETTINGS].ws_auth_timeout
    for _ in range(_MAX_UNAUTHENTICATED_FRAMES):
        try:
            msg = await ws.receive(timeout=max(0.001, deadline - loop.time()))
        except TimeoutError:
            await _send(
                ws, HubError("unauthorized", "No AUTHENTICATE in time; reconnect and send it.").frame()
            )
            await ws.close(code=AUTH_TIMEOUT, message=b"authentication timeout")
            return None
        if msg.type is WSMsgType.BINARY:
            await _send(ws, HubError("bad_request", "Frames are JSON text, not binary.").frame())
            continue
        if msg.type is not WSMsgType.TEXT:
            return None
        try:
            frame = parse(msg.data)
        except BadFrame as exc:
            metrics.frame_in("ws", "invalid")
            await _send(ws, exc.frame(exc.ref))
            continue
        metrics.frame_in("ws", frame.type)
        if frame.type != "AUTHENTICATE":
            await _send(ws, HubError("unauthorized", "Send AUTHENTICATE {token} first.").frame(frame.ref))
            continue
        try:
            return codec.verify(frame.data["token"]), frame.ref
        except TokenError as exc:
            await _refuse(ws, f"The token is not valid ({exc}); refresh it and reconnect.", frame.ref)
            return None
    await _refuse(ws, "Too many frames before AUTHENTICATE.", None)
    return None


async def ws_handler(request: web.Request) -> web.StreamResponse:
    """One raw WebSocket connection: authenticate, register, then read frames until closed."""
    app = request.app
    hub = app[HUB]
    settings = app[SETTINGS]
    metrics = app[METRICS]
    if not hub.accepting:
        raise web.HTTPServiceUnavailable(text="shutting down; reconnect", headers={"Retry-After": "1"})
    ws = web.WebSocketResponse(max_msg_size=settings.ws_max_frame_bytes, heartbeat=30.0)
    await ws.prepare(request)
    auth = await _authenticate(ws, request, metrics)
    if auth is None:
        return ws
    claims, ref = auth
    session = WsSession(ws, request, claims.user_id, app)
    writer = asyncio.create_task(session.run_writer(), name="gigwire-ws-writer")
    try:
        await hub.add_session(session)
        session.push(
            Frame.encode(
                "AUTHENTICATED",
                {"userId": claims.user_id, "sessionId": session.session_id, "serverTime": now_ms()},
                ref,
            )
        )
        await _read_loop(ws, hub, session, claims, app)
    finally:
        session.close(ws.close_code or 1000)
        with contextlib.suppress(Exception):
            await hub.remove_session(session)
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    return ws


async def _read_loop(
    ws: web.WebSocketResponse, hub: Hub, session: WsSession, claims: Claims, app: web.Application
) -> None:
    metrics = app[METRICS]
    while not session.closing:
        msg = await ws.receive()
        if msg.type is WSMsgType.TEXT:
            raw: Any = msg.data
        elif msg.type is WSMsgType.BINARY:
            metrics.frame_in("ws", "invalid")
            session.push(HubError("bad_request", "Frames are JSON text, not binary.").frame())
            continue
        else:
            return  # closed by the peer, by us, or a protocol error (1009 for a frame too large)
        try:
            frame = parse(raw)
        except BadFrame as exc:
            metrics.frame_in("ws", "invalid")
            session.push(exc.frame(exc.ref))
            continue
        metrics.frame_in("ws", frame.type)
        await _dispatch(hub, session, frame, claims, app)


async def _dispatch(
    hub: Hub, session: WsSession, frame: ClientFrame, claims: Claims, app: web.Application
) -> None:
    if frame.type == "AUTHENTICATE":
        # A fresh token on a live connection (e.g. after a refresh): same user only.
        try:
            fresh = app[TOKENS].verify(frame.data["token"])
        except TokenError as exc:
            session.push(HubError("unauthorized", f"The token is not valid ({exc}).").frame(frame.ref))
            session.close(UNAUTHORIZED, "unauthorized")
            return
        if fresh.user_id != claims.user_id:
            session.push(HubError("forbidden", "A connection serves one user; reconnect.").frame(frame.ref))
            return
        data = {"userId": fresh.user_id, "sessionId": session.session_id, "serverTime": now_ms()}
        session.push(Frame.encode("AUTHENTICATED", data, frame.ref))
        return
    try:
        ack = await handlers.handle(hub, session, frame)
    except HubError as exc:
        session.push(exc.frame(frame.ref))
        return
    except Exception:
        log.exception("event failed", extra={"type": frame.type})
        session.push(HubError("internal", "The server failed; nothing was stored.").frame(frame.ref))
        return
    if frame.ref is not None and frame.type != "PING":
        session.push(Frame.encode("ACK", ack or {}, frame.ref))


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
        yield
        await hub.shutdown()
        await hub.stop()

    async def on_shutdown(app: web.Application) -> None:
        await hub.shutdown()

    app.cleanup_ctx.append(realtime)
    app.on_shutdown.append(on_shutdown)
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/metrics", metrics_handler)
