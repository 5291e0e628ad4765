"""`python -m workers` settles Python's cycle collector like the web process and serves its pauses on
its own /metrics (WORKER_METRICS_PORT)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx

from tests.metrics_text import gc_pause_counts
from tests.services import Services, free_port
from tests.workers.conftest import start_worker_process


async def test_the_worker_process_serves_its_collector_pauses_and_stops_cleanly(
    services: Services, tmp_path: Path
) -> None:
    port = free_port()
    worker, log_path = await start_worker_process(
        services, tmp_path, HOST="127.0.0.1", WORKER_METRICS_PORT=str(port), DATABASE_POOL_MAX="2"
    )
    counts: dict[str, float] = {}
    try:
        async with httpx.AsyncClient() as http, asyncio.timeout(30):
            while counts.get("2", 0) < 1:
                assert worker.returncode is None, log_path.read_text()
                await asyncio.sleep(0.2)
                try:
                    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                except httpx.TransportError:
                    continue  # not listening yet
                counts = gc_pause_counts(text)
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(worker.wait(), 30)
    # settle's full collection runs after the meter is installed: it is counted
    assert counts.get("2", 0) >= 1, (counts, log_path.read_text())
    assert code == 0, log_path.read_text()
