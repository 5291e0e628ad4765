"""Wake-ups from PostgreSQL NOTIFY on a dedicated connection, with reconnect and backoff.

A missed notification only delays work: every loop also polls, so the listener is a latency
optimisation and never the only way work is found."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterable

import asyncpg

from workers.metrics import WorkerMetrics

log = logging.getLogger("gigwire.workers.listen")


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
        delay = 1.0
        first = True
        while True:
            lost = asyncio.Event()
            try:
                async with self._pool.acquire() as conn:
                    conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                    for channel in self._events:
                        await conn.add_listener(channel, self._on_notify)
                    if not first:
                        self._metrics.listener_reconnects.inc()
                        log.info("listener reconnected", extra={"channels": list(self._events)})
                    first = False
                    delay = 1.0
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
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning(
                    "listener connection lost; reconnecting",
                    extra={"error": repr(exc), "retryInS": round(delay, 1)},
                )
            self._wake_all()
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 60.0)


async def sleep_or_stop(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less when `stopping` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


async def wait_any(wake: asyncio.Event, stopping: asyncio.Event, seconds: float) -> None:
    """Return when `wake` or `stopping` is set, or after `seconds`."""
    waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopping.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
