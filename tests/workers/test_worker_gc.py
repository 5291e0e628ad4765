"""`python -m workers` settles Python's cycle collector like the web process and serves its pauses on
its own /metrics (WORKER_METRICS_PORT)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.services import Services, free_port

ROOT = Path(__file__).resolve().parents[2]


async def test_the_worker_process_serves_its_collector_pauses_and_stops_cleanly(
    services: Services, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": services.dsn,
        "REDIS_URL": services.redis_url,
        "REDIS_PREFIX": services.redis_prefix,
        "GIGWIRE_ENV": "dev",
        "GIGWIRE_DATA_DIR": str(tmp_path / "data"),
        "HOST": "127.0.0.1",
        "WORKER_METRICS_PORT": str(port),
        "DATABASE_POOL_MAX": "2",
        "LOG_LEVEL": "WARNING",
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workers", cwd=ROOT, env=env, stdout=log, stderr=log
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
                counts = {
                    s.labels["generation"]: s.value
                    for f in text_string_to_metric_families(text)
                    if f.name == "gigwire_gc_pause_seconds"
                    for s in f.samples
                    if s.name.endswith("_count")
                }
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(worker.wait(), 30)
    # settle's full collection runs after the meter is installed: it is counted
    assert counts.get("2", 0) >= 1, (counts, log_path.read_text())
    assert code == 0, log_path.read_text()
