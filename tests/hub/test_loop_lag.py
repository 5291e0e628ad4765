"""The event loop's lateness (hub/loop_lag.py), and the web process serving it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry, Histogram

from hub import loop_lag
from tests.metrics_text import samples as metric_samples


async def test_a_blocked_loop_is_seen_as_late_a_free_one_is_not() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("gigwire_loop_lag_seconds", "lag", buckets=loop_lag.BUCKETS, registry=registry)
    task = asyncio.create_task(loop_lag.measure(histogram, 0.02))
    await asyncio.sleep(0.2)  # free: every sample a few ms late at most
    calm = registry.get_sample_value("gigwire_loop_lag_seconds_count") or 0
    assert calm >= 3
    time.sleep(0.3)  # noqa: ASYNC251 -- the point: the loop blocked, the timer due meanwhile runs late
    await asyncio.sleep(0.1)
    task.cancel()
    late = registry.get_sample_value("gigwire_loop_lag_seconds_bucket", {"le": "0.1"}) or 0
    total = registry.get_sample_value("gigwire_loop_lag_seconds_count") or 0
    assert total - late >= 1  # the blocked sample is over 0.1 s
    assert (registry.get_sample_value("gigwire_loop_lag_seconds_sum") or 0) >= 0.25


async def test_the_web_process_serves_its_loop_lag(client: TestClient[Any, Any]) -> None:
    await asyncio.sleep(0.6)  # two samples at 0.25 s
    resp = await client.get("/metrics")
    assert resp.status == 200
    samples = metric_samples(await resp.text(), "gigwire_loop_lag_seconds")
    assert samples["gigwire_loop_lag_seconds_count"] >= 1, samples
