"""gigwire's background loops: outbox relay, FCM push, order timers, housekeeping.

`WorkerSet` runs the four loops over a pool and a broker; `python -m workers` runs one as its own
process, and `embed(app)` runs one inside the web process (the one-process default)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from domain.gateways import gateway_for
from domain.notify import PUSH_CHANNEL
from hub.broker import Broker
from hub.keys import BROKER, POOL, SETTINGS, STORE
from hub.metrics import METRICS
from hub.outbox import OUTBOX_CHANNEL
from hub.settings import Settings
from hub.store import Store
from workers.fcm import PushSender, create_sender
from workers.housekeeping import Housekeeping
from workers.listen import Wakeups
from workers.metrics import WorkerMetrics
from workers.push import PushWorker, presence_seen_live
from workers.relay import Relay
from workers.timers import Timers

log = logging.getLogger("gigwire.workers")

WORKERS: web.AppKey[WorkerSet] = web.AppKey("workers")
"""The web process's embedded workers (when settings.run_workers); their metrics are on `.metrics`."""


class WorkerSet:
    """The relay, the push sender, the timers and housekeeping of one process, with their wake-ups
    and metrics."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: Broker,
        store: Store,
        settings: Settings,
        *,
        sender: PushSender | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.metrics = metrics or WorkerMetrics()
        self.sender = sender or create_sender(settings.fcm_credentials_file, settings.fcm_endpoint)
        self.wakeups = Wakeups(pool, [OUTBOX_CHANNEL, PUSH_CHANNEL], self.metrics)
        self.relay = Relay(pool, broker, self.metrics)
        self.push = PushWorker(
            pool,
            self.sender,
            self.metrics,
            seen_live=presence_seen_live(store),
            max_attempts=settings.push_max_attempts,
        )
        self.timers = Timers(
            pool,
            self.metrics,
            auto_approve_s=settings.auto_approve_days * 86400,
            unpaid_expire_s=settings.unpaid_expire_hours * 3600,
            interval=settings.timer_sweep_s,
            # The sandbox gateway is dev-only: elsewhere without Razorpay there is nothing to ask.
            gateway=gateway_for(settings)
            if settings.payment_gateway == "razorpay" or settings.is_dev
            else None,
            payout_retry_s=settings.payout_retry_s,
            refund_retry_s=settings.refund_retry_s,
            refund_max_attempts=settings.refund_max_attempts,
        )
        self.housekeeping = Housekeeping(
            pool,
            self.metrics,
            idempotency_retention_s=settings.idempotency_retention_s,
            feed_retention_s=settings.feed_retention_s,
        )
        self.stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start every loop in the background."""
        self.wakeups.start()
        self._tasks = [
            asyncio.create_task(
                self.relay.run(self.wakeups.event(OUTBOX_CHANNEL), self.stopping), name="gigwire-relay"
            ),
            asyncio.create_task(
                self.push.run(self.wakeups.event(PUSH_CHANNEL), self.stopping), name="gigwire-push"
            ),
            asyncio.create_task(self.timers.run(self.stopping), name="gigwire-timers"),
            # Its own loop: a long backlog never delays the timers.
            asyncio.create_task(self.housekeeping.run(self.stopping), name="gigwire-housekeeping"),
        ]
        log.info("workers started", extra={"loops": [t.get_name() for t in self._tasks]})

    async def stop(self, grace: float = 10.0) -> None:
        """Let each loop finish the batch in hand (up to `grace` seconds), then cancel what is left
        (an unfinished batch rolls back and is redone by the next worker) and close the sender."""
        self.stopping.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            for result in await asyncio.gather(*self._tasks, return_exceptions=True):
                if isinstance(result, Exception):
                    log.error("worker loop ended with an error", extra={"error": repr(result)})
        await self.wakeups.stop()
        await self.sender.close()
        log.info("workers stopped")


def embed(app: web.Application) -> None:
    """Run the workers inside the web process (the one-process default): they start after the
    pool, store and broker, and stop before them."""

    async def workers_ctx(app: web.Application) -> AsyncIterator[None]:
        # Counted on the hub's registry when there is one, so the web process's /metrics shows them.
        registry = app[METRICS].registry if METRICS in app else None
        metrics = WorkerMetrics(registry)
        workers = WorkerSet(app[POOL], app[BROKER], app[STORE], app[SETTINGS], metrics=metrics)
        app[WORKERS] = workers
        workers.start()
        yield
        await workers.stop()

    app.cleanup_ctx.append(workers_ctx)
