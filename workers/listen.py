"""How the worker loops run and wait: under `supervise_worker` (hub.loops.supervise with the
workers' error counter), woken by PostgreSQL NOTIFY on a dedicated connection (`Wakeups`, itself
supervised: reconnect with backoff).

A missed notification only delays work: every loop also polls, so the listener is a latency
optimisation and never the only way work is found."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

import asyncpg
from redis.exceptions import RedisError

from hub.db import DatabaseUnavailable
from hub.loops import Backoff, supervise
from workers.metrics import WorkerMetrics

log = logging.getLogger("gigwire.workers.listen")

TRANSIENT = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, DatabaseUnavailable, RedisError)
"""What a lost or refusing database or Redis raises: the worker loops log these without a
traceback (anything else is a bug and gets one); all are counted and retried alike."""


async def supervise_worker(
    name: str,
    step: Callable[[], Awaitable[object]],
    metrics: WorkerMetrics,
    stopping: asyncio.Event,
    *,
    logger: logging.Logger,
    message: str,
) -> None:
    """`hub.loops.supervise` as every worker loop runs it: until `stopping` is set, each failure
    counted on gigwire_worker_errors{loop=name}, TRANSIENT ones logged without a traceback."""
    await supervise(
        name,
        step,
        logger=logger,
        message=message,
        on_error=lambda _exc: metrics.loop_errors.labels(name).inc(),
        stopping=stopping,
        expected=TRANSIENT,
    )


class Wakeups:
    """One pooled connection LISTENing on some channels; `event(channel)` is set on each NOTIFY.

    Holds the connection for the life of the worker; if it breaks, every event is set (so loops
    look for work at once) and the listener reconnects with backoff from 1 s to 60 s with jitter."""

    def __init__(self, pool: asyncpg.Pool, channels: Iterable[str], metrics: WorkerMetrics) -> None:
        self._pool = pool
        self._events = {c: asyncio.Event() for c in channels}
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self._backoff = Backoff()
        self._first = True

    def event(self, channel: str) -> asyncio.Event:
        """The event set whenever `channel` is notified (the waiter clears it)."""
        return self._events[channel]

    def start(self) -> None:
        """Start listening in the background."""
        self._task = asyncio.create_task(self._run(), name="gigwire-workers-listen")

    async def stop(self) -> None:
        """Stop listening and give the connection back."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _wake_all(self) -> None:
        for event in self._events.values():
            event.set()

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object) -> None:
        event = self._events.get(channel)
        if event is not None:
            event.set()

    async def _run(self) -> None:
        # A lost connection is the usual failure and is logged without a traceback; anything else
        # (a bug) is logged with one. Both are counted and retried: the listener never dies.
        await supervise(
            "listen",
            self._listen_once,
            logger=log,
            message="listener connection lost; reconnecting",
            on_error=self._lost,
            backoff=self._backoff,
            expected=TRANSIENT,
        )

    def _lost(self, exc: Exception) -> None:
        self._metrics.loop_errors.labels("listen").inc()
        # Work committed while we are away produces no notification we could see: look now.
        self._wake_all()

    async def _listen_once(self) -> None:
        """Hold one LISTEN connection until it is lost (then raise); never returns."""
        lost = asyncio.Event()
        async with self._pool.acquire() as conn:
            conn.add_termination_listener(lambda _c, lost=lost: lost.set())
            for channel in self._events:
                await conn.add_listener(channel, self._on_notify)
            if not self._first:
                self._metrics.listener_reconnects.inc()
                log.info("listener reconnected", extra={"channels": list(self._events)})
            self._first = False
            self._backoff.reset()
            self.connected.set()
            # Work committed while we were away produced no notification we could see.
            self._wake_all()
            try:
                while not lost.is_set():
                    # A cheap round trip notices a silently dead connection.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), 15)
                    if not lost.is_set():
                        await asyncio.wait_for(conn.execute("SELECT 1"), 10)
                raise ConnectionResetError("the LISTEN connection was terminated")
            finally:
                self.connected.clear()
                if not conn.is_closed():
                    for channel in self._events:
                        with contextlib.suppress(Exception):
                            await conn.remove_listener(channel, self._on_notify)


def batch_step(
    run_once: Callable[[], Awaitable[int]],
    batch_size: int,
    wake: asyncio.Event,
    stopping: asyncio.Event,
    poll_interval: float,
) -> Callable[[], Awaitable[None]]:
    """The step of a batch loop (relay, push sender): run one batch; a full one goes straight on
    to the next, otherwise wait for `wake` (a NOTIFY), `stopping` or `poll_interval` seconds."""

    async def step() -> None:
        wake.clear()
        if await run_once() < batch_size:
            await wait_any(wake, stopping, poll_interval)

    return step


async def wait_any(wake: asyncio.Event, stopping: asyncio.Event, seconds: float) -> None:
    """Return when `wake` or `stopping` is set, or after `seconds`."""
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopping.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
