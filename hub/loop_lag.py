"""How late the event loop runs what is due: `gigwire_loop_lag_seconds`.

Every `INTERVAL_S` a timer is set; the histogram records how long after its due time it ran. A
process whose loop is saturated (too many sessions or messages for one core, a long collection, a
callback that blocks) shows it here before clients see it in their latencies: every frame in flight
waits at least that long. Four timers a second cost nothing measurable."""

from __future__ import annotations

import asyncio

from prometheus_client import Histogram

INTERVAL_S = 0.25
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


async def measure(histogram: Histogram, interval: float = INTERVAL_S) -> None:
    """Observe the loop's lateness into `histogram` every `interval` seconds until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        histogram.observe(max(0.0, loop.time() - due))
