"""Python's cycle collector, tuned for a process that holds thousands of long-lived sessions, its
pauses measured, and the C heap's free pages handed back to the system.

Why: with CPython's default thresholds (700, 10, 10) a hub holding 2,500 sessions at 500 chat
messages/s ran a full collection every 5 to 8 s, each stopping the event loop for 100 to 160 ms
(bench/README.md, "The ACK tail"): that was the ACK p99. `settle()` makes two moves once the
process has started:

- it freezes what startup built (modules, classes, the app's routes and state): no collection walks
  those objects again (`gc.freeze`);
- it raises the first generation's threshold to `GC_THRESHOLD` allocations (default 50,000). A young
  collection promotes whatever is alive at that instant (messages in flight, pending futures); fewer
  young collections promote far fewer such objects, and a full collection, which CPython starts
  when the promoted objects reach a quarter of the long-lived ones, becomes rare.

The trade: cyclic garbage waits for the next young collection, at most `GC_THRESHOLD` allocations
away. `GC_THRESHOLD=0` leaves CPython's defaults alone.

`PauseMeter` times every collection through `gc.callbacks` and serves the pauses as the histogram
`gigwire_gc_pause_seconds{generation}`. The callback only adds to plain numbers (a collection can
start inside any allocation, including one made while a metric's lock is held); the histogram is
built when /metrics is scraped.

`keep_tidy()` runs, every `TIDY_INTERVAL_S` seconds, a young collection (generations 0 and 1: what
became cyclic garbage since the last one, a few milliseconds) and then asks glibc to return the
free pages of its heap (`malloc_trim`). The young collection bounds the cyclic garbage to a
minute's worth whatever the threshold (closed connections' transports are cycles inside asyncio),
and the trim hands back what it freed: buffers of varying sizes (socket reads, encoded frames,
driver buffers) leave holes that glibc keeps. In a 7-minute soak its free space grew from 1.3 to
6.8 MiB while the bytes in use stayed at 20.4 MiB, and RSS grew with it (bench/README.md, "Soak").
Without glibc (musl, macOS) only the collection runs."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

DEFAULT_THRESHOLD = 50_000
TIDY_INTERVAL_S = 60.0
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def settle(threshold: int) -> None:
    """Collect once, freeze what survives, and set the first generation's threshold to
    `threshold` allocations (the older generations keep theirs). `threshold <= 0` does nothing."""
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)


class PauseMeter(Collector):
    """Every collection's pause, by generation, as a Prometheus histogram. `install()` starts timing,
    `uninstall()` stops it; both are idempotent."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._started = 0.0
        # per generation: cumulative bucket counts (the last is +Inf), and the sum of pauses
        self._counts = [[0] * (len(BUCKETS) + 1) for _ in range(3)]
        self._sums = [0.0, 0.0, 0.0]
        if registry is not None:
            registry.register(self)

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = min(int(info.get("generation", 0)), 2)
        self._counts[generation][bisect_left(BUCKETS, pause)] += 1
        self._sums[generation] += pause

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "gigwire_gc_pause_seconds",
            "Event-loop pauses of Python's cycle collector, by generation (2: a full collection).",
            labels=["generation"],
        )
        for generation in range(3):
            counts = self._counts[generation]
            running = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip((*map(str, BUCKETS), "+Inf"), counts, strict=True):
                running += count
                buckets.append((bound, running))
            family.add_metric([str(generation)], buckets, self._sums[generation])
        yield family


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return cast(Callable[[int], int], trim)


@contextlib.asynccontextmanager
async def tended(meter: PauseMeter, interval: float = TIDY_INTERVAL_S) -> AsyncIterator[None]:
    """While inside: every collection timed by `meter`, and `keep_tidy` running (both processes,
    hub/realtime.py and workers/__main__.py)."""
    meter.install()
    tidy = asyncio.get_running_loop().create_task(keep_tidy(interval), name="gigwire-memory-tidy")
    try:
        yield
    finally:
        tidy.cancel()
        await asyncio.gather(tidy, return_exceptions=True)
        meter.uninstall()


async def keep_tidy(interval: float = TIDY_INTERVAL_S) -> None:
    """Every `interval` seconds until cancelled: collect generations 0 and 1, then glibc's
    `malloc_trim(0)` where there is one."""
    call = _malloc_trim()
    while True:
        await asyncio.sleep(interval)
        gc.collect(1)
        if call is not None:
            call(0)
