"""`setup_realtime` mounts the hub on the web app: its start, stop and shutdown, the /ws front,
the aiohttp route for /ws upgrades that did not come through hub.door, and /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from hub import conversations, gc_tune, loop_lag, websocket
from hub.app import DELIVER
from hub.compat_aiohttp import message_tail
from hub.hub import Hub
from hub.keys import BROKER, HUB, POOL, SETTINGS, STORE, TOKENS, WS_FRONT
from hub.metrics import METRICS, HubMetrics, metrics_handler
from hub.presence import Presence
from hub.settings import Settings
from hub.ws_front import WsFront


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
    rest = message_tail(request)
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
        hub.spawn(conversations.keep_announcing(hub), "gigwire-convo-watchers")
        hub.spawn(loop_lag.measure(metrics.loop_lag), "gigwire-loop-lag")
        front = app[WS_FRONT] = WsFront(hub, app[TOKENS], settings, metrics)
        front.start()
        async with gc_tune.tended(metrics.gc_pauses):
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
