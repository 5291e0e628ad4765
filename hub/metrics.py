"""The hub's Prometheus metrics, one CollectorRegistry per app, served at /metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from hub.gc_tune import PauseMeter
from hub.loop_lag import BUCKETS as LAG_BUCKETS
from hub.protocol import CLIENT_TYPES

# Server frame types; any other label value is folded into "other" so label sets stay bounded.
_SERVER_TYPES = frozenset(
    {
        "AUTHENTICATED",
        "CHAT_MESSAGE",
        "MESSAGE_READ",
        "TYPING_START",
        "TYPING_STOP",
        "ORDER_UPDATE",
        "NEW_APPLICATION",
        "NOTIFICATION",
        "CONVERSATION_UPDATED",
        "ACK",
        "ERROR",
        "PONG",
    }
)


class HubMetrics:
    """Counters of the realtime core. Children are cached per label so hot paths skip the lookup."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "gigwire_connections", "Open realtime connections.", ["transport"], registry=r
        )
        self.frames_in = Counter(
            "gigwire_frames_in", "Client frames received, by type.", ["transport", "type"], registry=r
        )
        self.frames_out = Counter(
            "gigwire_frames_out", "Frames written to clients, by type.", ["transport", "type"], registry=r
        )
        self.deliveries = Counter(
            "gigwire_deliveries", "Frames handed to local sessions by the broker listener.", registry=r
        )
        self.broker_messages = Counter(
            "gigwire_broker_messages",
            "Messages received from the broker, by channel kind.",
            ["kind"],
            registry=r,
        )
        self.broker_reconnects = Counter(
            "gigwire_broker_reconnects", "Broker listener reconnects after a lost connection.", registry=r
        )
        self.publish_failures = Counter(
            "gigwire_publish_failures",
            "Broker publishes that failed (healed by sinceSeq replay).",
            registry=r,
        )
        self.queue_overflows = Counter(
            "gigwire_queue_overflows",
            "Sessions closed with 1013 for reading too slowly.",
            ["transport"],
            registry=r,
        )
        self.rate_limited = Counter(
            "gigwire_rate_limited",
            "Client events refused over a connection's budget (rate_limited), by event type.",
            ["type"],
            registry=r,
        )
        self.rate_limit_closes = Counter(
            "gigwire_rate_limit_closes",
            "Connections closed with 1008 for going on over their rate limits.",
            ["transport"],
            registry=r,
        )
        self.close_aborts = Counter(
            "gigwire_close_aborts",
            "Sessions whose close did not finish within the close grace and were cut (no close sent).",
            ["transport"],
            registry=r,
        )
        self.gap_fills = Counter(
            "gigwire_chat_gap_fills",
            "Chat messages read back from PostgreSQL to fill a live gap.",
            registry=r,
        )
        # From the message's insert (createdAt) to its hand-off to this node's local sessions.
        self.latency = Histogram(
            "gigwire_send_to_deliver_seconds",
            "Chat message latency from stored to handed to this node's sessions.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        # timed while the realtime hub runs (hub/realtime.py installs it)
        self.gc_pauses = PauseMeter(r)
        self.loop_lag = Histogram(
            "gigwire_loop_lag_seconds",
            "How late the event loop ran a timer (sampled every 0.25 s): how long any frame waits.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self._in: dict[tuple[str, str], Counter] = {}
        self._out: dict[tuple[str, str], Counter] = {}

    def frame_in(self, transport: str, event_type: str) -> None:
        """Count one client frame (unknown types counted as "invalid")."""
        key = (transport, event_type if event_type in CLIENT_TYPES else "invalid")
        child = self._in.get(key)
        if child is None:
            child = self._in[key] = self.frames_in.labels(*key)
        child.inc()

    def frame_out(self, transport: str, event_type: str, n: int = 1) -> None:
        """Count `n` frames written to clients."""
        key = (transport, event_type if event_type in _SERVER_TYPES else "other")
        child = self._out.get(key)
        if child is None:
            child = self._out[key] = self.frames_out.labels(*key)
        child.inc(n)

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


METRICS: web.AppKey[HubMetrics] = web.AppKey("metrics")


async def metrics_handler(request: web.Request) -> web.Response:
    """GET /metrics: this process's realtime metrics in the Prometheus text format."""
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
