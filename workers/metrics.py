"""What the workers count, on a registry of their own that any /metrics endpoint can expose."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class WorkerMetrics:
    """Counters of the outbox relay, the push sender, the order timers and housekeeping.

    Each instance owns its registry, so several worker sets (tests, benchmarks) never collide;
    expose it with `prometheus_client.generate_latest(metrics.registry)`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.outbox_published = Counter(
            "gigwire_outbox_published", "Outbox rows published to the broker", ["event_type"], registry=r
        )
        self.outbox_frames = Counter(
            "gigwire_outbox_frames", "Frames published (one per row and channel)", registry=r
        )
        self.outbox_lag = Histogram(
            "gigwire_outbox_lag_seconds",
            "From the outbox row's commit to its publish",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.push_jobs_queued = Counter("gigwire_push_jobs_queued", "Push jobs queued", ["type"], registry=r)
        self.push_sent = Counter("gigwire_push_sent", "Push messages FCM accepted", registry=r)
        self.push_retried = Counter(
            "gigwire_push_retried", "Push messages scheduled for another try", ["reason"], registry=r
        )
        self.push_pruned = Counter(
            "gigwire_push_pruned", "Device tokens deleted after FCM refused them", ["reason"], registry=r
        )
        self.push_dead_lettered = Counter(
            "gigwire_push_dead_lettered", "Push jobs moved to the dead-letter table", registry=r
        )
        self.push_skipped = Counter(
            "gigwire_push_skipped",
            "Push jobs dropped unsent: preference off, no device, chat seen live",
            ["reason"],
            registry=r,
        )
        self.timers_fired = Counter("gigwire_timers_fired", "Orders moved by a timer", ["action"], registry=r)
        self.refunds_needs_attention = Counter(
            "gigwire_refunds_needs_attention",
            "Failed refunds handed to admins after REFUND_MAX_ATTEMPTS requests",
            registry=r,
        )
        self.housekeeping_deleted = Counter(
            "gigwire_housekeeping_deleted", "Rows housekeeping deleted", ["table"], registry=r
        )
        self.loop_errors = Counter(
            "gigwire_worker_errors", "Failed iterations of a worker loop", ["loop"], registry=r
        )
        self.listener_reconnects = Counter(
            "gigwire_worker_listener_reconnects", "LISTEN connection re-established", registry=r
        )
