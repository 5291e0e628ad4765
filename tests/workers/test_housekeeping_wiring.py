"""Housekeeping where the workers run: inside the web process (RUN_WORKERS) as well as in
`python -m workers`, counted on the process's /metrics and stopped with the other loops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
from aiohttp import web

from tests.workers.test_housekeeping import HOUR, add_otp, otp_phones
from workers import WORKERS


async def test_the_web_process_with_embedded_workers_sweeps(
    aiohttp_client: Any, make_app: Callable[..., web.Application], pool: asyncpg.Pool
) -> None:
    stale = await add_otp(pool, sent_ago=3 * HOUR)
    fresh = await add_otp(pool, sent_ago=0)
    app = make_app(run_workers=True, timer_sweep_s=3600)
    client = await aiohttp_client(app)
    # The first sweep runs as the workers start; the next would be 10 minutes later.
    async with asyncio.timeout(20):
        while await otp_phones(pool, [stale]):  # noqa: ASYNC110 - another task's work
            await asyncio.sleep(0.05)
    assert await otp_phones(pool, [fresh]) == {fresh}
    registry = app[WORKERS].metrics.registry
    swept = registry.get_sample_value("gigwire_housekeeping_deleted_total", {"table": "otp_codes"})
    assert swept is not None and swept >= 1
    text = await (await client.get("/metrics")).text()
    assert 'gigwire_housekeeping_deleted_total{table="otp_codes"}' in text

    tasks = {t.get_name(): t for t in app[WORKERS]._tasks}
    assert "gigwire-housekeeping" in tasks
    await client.close()  # the app's cleanup stops the workers
    assert tasks["gigwire-housekeeping"].done() and not tasks["gigwire-housekeeping"].cancelled()
