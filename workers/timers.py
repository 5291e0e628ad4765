"""Timers: submitted orders auto-approve, unpaid orders expire, stuck payouts are asked for again,
failed refunds are retried.

Durable because the deadline is the order's own column (submitted_at, created_at) and not a timer
in memory: a sweep every `settings.timer_sweep_s` finds whatever is due, including what came due
while no worker ran. Idempotent because each order moves in its own transaction through
rest.orders.transition, which locks the row and refuses a move its state no longer allows; FOR
UPDATE SKIP LOCKED lets several workers sweep side by side without waiting on each other.

The payout sweep finds withdrawals still `pending` (no definite answer from the gateway, or the
process died between committing the withdrawal and asking for its payout) untouched for
`payout_retry_s`, and asks for the payout again: the request is idempotent at the gateway on the
withdrawal id, so it never pays twice. A definite answer is applied by rest.wallet.record_payout
(the code the withdraw handler uses); an unknown one only touches `updated_at`, so the withdrawal
is asked for again one `payout_retry_s` later.

The refund sweep finds refunds the gateway failed (gateway_refunds `failed`, domain/refunds.py)
untouched for `refund_retry_s` and asks again, through refund_once (it first lists the payment's
refunds, so a lost answer never refunds twice), with a receipt of the row and attempt number. After
`refund_max_attempts` requests a still-failed refund becomes `needs_attention` (counted in
gigwire_refunds_needs_attention_total, listed by GET /api/admin/refunds). A refund still `initiated`
`refund_retry_s` after its last change (no webhook came) is looked up in the gateway's list of the
payment's refunds, and a processed or failed one settled as its webhook would have."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncpg

from hub.loops import sleep_or_stop
from workers.listen import supervise_worker
from workers.metrics import WorkerMetrics

if TYPE_CHECKING:
    from domain.gateway import Gateway
    from hub.db import Conn

    Handle = Callable[[Conn, asyncpg.Record], Awaitable[Any]]

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
        gateway: Gateway | None = None,
        payout_retry_s: float = 300.0,
        refund_retry_s: float = 1800.0,
        refund_max_attempts: int = 5,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._ages = {"approve": auto_approve_s, "expire": unpaid_expire_s}
        self.interval = interval
        self._gateway = gateway  # None: no payout sweep (e.g. tests of the order timers alone)
        self._payout_retry_s = payout_retry_s
        self._refund_retry_s = refund_retry_s
        self._refund_max_attempts = refund_max_attempts

    async def sweep(self) -> dict[str, int]:
        """Move every due order now; return how many moved per action. An order whose transition
        fails is logged, counted and left for the next sweep."""
        from domain.orders import transition

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
        if self._gateway is not None:
            moved["payout"] = await self.sweep_payouts(self._gateway)
            moved["refund"] = await self.sweep_refunds(self._gateway)
            moved["refund_check"] = await self.check_refunds(self._gateway)
        return moved

    async def _one_at_a_time(
        self, what: str, key: str, select: str, args: tuple[Any, ...], handle: Handle
    ) -> list[tuple[str, Any]]:
        """Run `handle` on each row `select` finds, one per transaction with the row locked (FOR
        UPDATE SKIP LOCKED, so no other sweep takes it meanwhile, even during a gateway call).
        `select`'s last parameter is the ids already taken this sweep: each row is tried once per
        sweep, whatever became of it. A row whose handling fails is rolled back, logged ("<what>
        failed", its id under `key`) and counted, and the sweep goes on. Returns (id, outcome) of
        each row handled."""
        done: list[tuple[str, Any]] = []
        seen: list[str] = []
        while True:
            row_id: str | None = None
            async with self._pool.acquire() as conn:
                try:
                    async with conn.transaction():
                        row = await conn.fetchrow(select, *args, seen)
                        if row is None:
                            break
                        row_id = str(row["id"])
                        seen.append(row_id)
                        outcome = await handle(conn, row)
                except Exception as exc:
                    if row_id is None:
                        raise
                    self._metrics.loop_errors.labels("timers").inc()
                    log.warning(f"{what} failed", extra={key: row_id, "error": _describe(exc)})
                    continue
            done.append((row_id, outcome))
        return done

    async def sweep_payouts(self, gateway: Gateway) -> int:
        """Ask again for the payout of every withdrawal pending for `payout_retry_s`, one per
        transaction, and apply a definite answer; return how many got one. The row stays locked
        during the gateway call so no other sweep asks for it at the same time."""
        from domain.payouts import record_payout, request_payout

        async def handle(conn: Conn, row: asyncpg.Record) -> str:
            outcome = await request_payout(
                gateway,
                withdrawal_id=row["id"],
                fund_account_id=row["fund_account_id"],
                amount=row["amount"],
                currency=row["currency"],
            )
            result = await record_payout(conn, row["id"], outcome)
            if result == "unknown":
                # Still no answer: wait another payout_retry_s before asking again.
                await conn.execute("UPDATE withdrawals SET updated_at = now() WHERE id = $1", row["id"])
            return result

        done = await self._one_at_a_time(
            "payout retry",
            "withdrawal",
            "SELECT w.id::text AS id, w.amount, w.currency, b.fund_account_id"
            " FROM withdrawals w JOIN bank_accounts b ON b.id = w.bank_account_id"
            " WHERE w.status = 'pending' AND w.updated_at <= now() - make_interval(secs => $1)"
            " AND NOT (w.id::text = ANY($2::text[]))"
            " ORDER BY w.updated_at LIMIT 1 FOR UPDATE OF w SKIP LOCKED",
            (self._payout_retry_s,),
            handle,
        )
        settled = 0
        for withdrawal_id, result in done:
            if result != "unknown":
                settled += 1
                self._metrics.timers_fired.labels("payout").inc()
            log.info("payout asked again", extra={"withdrawal": withdrawal_id, "outcome": result})
        return settled

    async def sweep_refunds(self, gateway: Gateway) -> int:
        """Retry every failed refund untouched for `refund_retry_s`, one per transaction with its
        row locked during the gateway call, and hand to the admins (needs_attention) each one that
        has had `refund_max_attempts` requests; return how many the gateway accepted."""
        from domain import refunds

        most = self._refund_max_attempts

        async def handle(conn: Conn, row: asyncpg.Record) -> tuple[str, bool]:
            outcome = "exhausted"
            if row["attempts"] < most:
                outcome = await refunds.retry(conn, row, gateway)
            escalated = (
                outcome in ("exhausted", "unknown", "refused")
                and row["attempts"] + (outcome != "exhausted") >= most
                and await refunds.escalate(conn, str(row["id"]))
            )
            return outcome, escalated

        done = await self._one_at_a_time(
            "refund retry",
            "refund",
            "SELECT * FROM gateway_refunds WHERE status = 'failed'"
            " AND (attempts >= $2 OR updated_at <= now() - make_interval(secs => $1))"
            " AND NOT (id::text = ANY($3::text[]))"
            " ORDER BY updated_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            (self._refund_retry_s, most),
            handle,
        )
        accepted = 0
        for refund_id, (outcome, escalated) in done:
            if escalated:
                self._metrics.refunds_needs_attention.inc()
            if outcome in ("initiated", "processed"):
                accepted += 1
                self._metrics.timers_fired.labels("refund").inc()
            log.info("refund asked again", extra={"refund": refund_id, "outcome": outcome})
        return accepted

    async def check_refunds(self, gateway: Gateway) -> int:
        """Look up at the gateway every refund still `initiated` `refund_retry_s` after its last
        change (its webhook never came) and apply what the gateway lists, one per transaction;
        return how many were settled (processed or failed)."""
        from domain import refunds

        async def handle(conn: Conn, row: asyncpg.Record) -> str:
            return await refunds.reconcile(conn, row, gateway)

        done = await self._one_at_a_time(
            "refund check",
            "refund",
            "SELECT * FROM gateway_refunds WHERE status = 'initiated'"
            " AND updated_at <= now() - make_interval(secs => $1)"
            " AND NOT (id::text = ANY($2::text[]))"
            " ORDER BY updated_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            (self._refund_retry_s,),
            handle,
        )
        settled = 0
        for refund_id, outcome in done:
            if outcome != "pending":
                settled += 1
                self._metrics.timers_fired.labels("refund_check").inc()
                log.info(
                    "refund settled from the gateway's list", extra={"refund": refund_id, "outcome": outcome}
                )
        return settled

    async def run(self, stopping: asyncio.Event) -> None:
        """Sweep every `interval` seconds until `stopping` is set; a failed sweep is logged, counted
        and tried again after a backoff from 1 s to 60 s."""

        async def step() -> None:
            await self.sweep()
            await sleep_or_stop(stopping, self.interval)

        await supervise_worker(
            "timers", step, self._metrics, stopping, logger=log, message="timer sweep failed"
        )


def _describe(exc: BaseException) -> Any:
    message = getattr(exc, "message", None)
    return f"{type(exc).__name__}: {message or exc}"
