"""Order timers: submitted orders auto-approve, unpaid orders expire.

Durable because the deadline is the order's own column (submitted_at, created_at) and not a timer
in memory: a sweep every `settings.timer_sweep_s` finds whatever is due, including what came due
while no worker ran. Idempotent because each order moves in its own transaction through
rest.orders.transition, which locks the row and refuses a move its state no longer allows; FOR
UPDATE SKIP LOCKED lets several workers sweep side by side without waiting on each other."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from workers.listen import sleep_or_stop
from workers.metrics import WorkerMetrics

log = logging.getLogger("gigwire.workers.timers")

# action -> the due orders it applies to; $1 is the age in seconds, $2 the ids that already failed
# in this sweep (so one bad order cannot loop the sweep).
_DUE = {
    "approve": "status = 'submitted' AND submitted_at <= now() - make_interval(secs => $1)",
    "expire": "status = 'pending_payment' AND created_at <= now() - make_interval(secs => $1)",
}


class Timers:
    """Sweeps due orders and applies the system's transition to each."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        metrics: WorkerMetrics,
        *,
        auto_approve_s: float,
        unpaid_expire_s: float,
        interval: float = 30.0,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._ages = {"approve": auto_approve_s, "expire": unpaid_expire_s}
        self.interval = interval

    async def sweep(self) -> dict[str, int]:
        """Move every due order now; return how many moved per action. An order whose transition
        fails is logged, counted and left for the next sweep."""
        from rest.orders import transition

        moved = {action: 0 for action in _DUE}
        for action, where in _DUE.items():
            failed: list[str] = []
            while True:
                order_id: str | None = None
                async with self._pool.acquire() as conn:
                    try:
                        async with conn.transaction():
                            order_id = await conn.fetchval(
                                f"SELECT id::text FROM orders WHERE {where}"
                                " AND NOT (id::text = ANY($2::text[]))"
                                " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
                                self._ages[action],
                                failed,
                            )
                            if order_id is None:
                                break
                            await transition(conn, order_id, action, None)
                    except Exception as exc:
                        if order_id is None:
                            raise
                        failed.append(order_id)
                        self._metrics.loop_errors.labels("timers").inc()
                        log.warning(
                            "timer transition failed",
                            extra={"orderId": order_id, "action": action, "error": _describe(exc)},
                        )
                        continue
                moved[action] += 1
                self._metrics.timers_fired.labels(action).inc()
                log.info("timer moved order", extra={"orderId": order_id, "action": action})
        return moved

    async def run(self, stopping: asyncio.Event) -> None:
        """Sweep every `interval` seconds until `stopping` is set."""
        while not stopping.is_set():
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._metrics.loop_errors.labels("timers").inc()
                log.warning("timer sweep failed", extra={"error": repr(exc)})
            await sleep_or_stop(stopping, self.interval)


def _describe(exc: BaseException) -> Any:
    message = getattr(exc, "message", None)
    return f"{type(exc).__name__}: {message or exc}"
