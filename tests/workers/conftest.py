"""Fixtures of the worker tests: a local FCM server, the real firebase-admin sender pointed at it,
users with devices, a Redis broker subscriber that records frames."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from hub.broker import Broker
from hub.brokers import create_broker
from hub.settings import Settings
from tests.factories import TestUser, make_user
from tests.services import Services
from tests.workers.fake_fcm import FakeFcm
from workers.fcm import FcmSender
from workers.metrics import WorkerMetrics
from workers.push import PushWorker

ROOT = Path(__file__).resolve().parents[2]


async def start_worker_process(
    services: Services, tmp_path: Path, name: str = "worker", **extra: str
) -> tuple[asyncio.subprocess.Process, Path]:
    """`python -m workers` on the test's PostgreSQL and Redis in dev mode, timers swept hourly, its
    output in `<tmp_path>/<name>.log` (returned with the process); `extra` adds or overrides
    environment variables."""
    env = {
        **os.environ,
        "DATABASE_URL": services.dsn,
        "REDIS_URL": services.redis_url,
        "REDIS_PREFIX": services.redis_prefix,
        "GIGWIRE_ENV": "dev",
        "GIGWIRE_DATA_DIR": str(tmp_path / name),
        "TIMER_SWEEP_S": "3600",
        "LOG_LEVEL": "WARNING",
        **extra,
    }
    log_path = tmp_path / f"{name}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workers", cwd=ROOT, env=env, stdout=log, stderr=log
        )
    return process, log_path


@pytest.fixture
async def fcm() -> AsyncIterator[FakeFcm]:
    server = FakeFcm()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def sender(fcm: FakeFcm, tmp_path: Path) -> AsyncIterator[FcmSender]:
    s = FcmSender(fcm.credentials_file(tmp_path), endpoint=fcm.url)
    yield s
    await s.close()


@pytest.fixture
def metrics() -> WorkerMetrics:
    return WorkerMetrics()


@pytest.fixture
def push_worker(pool: asyncpg.Pool, sender: FcmSender, metrics: WorkerMetrics) -> PushWorker:
    """A push sender with quick retries (tests wait for them), four tries before the dead letter."""
    return PushWorker(pool, sender, metrics, max_attempts=4, base_delay=0.05, max_delay=0.2)


async def add_device(pool: asyncpg.Pool, user: TestUser, platform: str = "android") -> str:
    token = f"tok-{secrets.token_hex(12)}"
    await pool.execute(
        "INSERT INTO devices (token, user_id, platform) VALUES ($1, $2, $3)", token, user.id, platform
    )
    return token


@pytest.fixture
def user_factory(pool: asyncpg.Pool, settings: Settings) -> Any:
    async def build(**fields: Any) -> TestUser:
        return await make_user(pool, settings, **fields)

    return build


class Recorder:
    """A broker of its own (Redis, this run's prefix) subscribed to some channels, recording every
    frame: `frames[channel]` is the list of decoded frames."""

    def __init__(self, services: Services) -> None:
        self.frames: dict[str, list[dict[str, Any]]] = {}
        self.arrived = asyncio.Event()
        self.broker: Broker = create_broker(services.redis_url, services.redis_prefix, self._deliver)

    def _deliver(self, channel: str, data: bytes) -> None:
        self.frames.setdefault(channel, []).append(orjson.loads(data))
        self.arrived.set()

    async def subscribe(self, *channels: str) -> None:
        for channel in channels:
            await self.broker.subscribe(channel)
        # Redis confirms subscriptions asynchronously: wait until a probe comes back on each channel.
        for channel in channels:
            for _ in range(200):
                await self.broker.publish(channel, b'{"type":"PROBE"}')
                await asyncio.sleep(0.02)
                if any(f["type"] == "PROBE" for f in self.frames.get(channel, [])):
                    break
            self.frames[channel] = [f for f in self.frames.get(channel, []) if f["type"] != "PROBE"]

    async def wait_for(self, predicate: Any, within: float = 10.0) -> None:
        """Wait until predicate() is true (or fail the test after `within` seconds)."""
        async with asyncio.timeout(within):
            while not predicate():
                self.arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.arrived.wait(), 0.1)


@pytest.fixture
async def recorder(services: Services) -> AsyncIterator[Recorder]:
    r = Recorder(services)
    await r.broker.start()
    yield r
    await r.broker.close()


@pytest.fixture
async def broker(services: Services) -> AsyncIterator[Broker]:
    """A publishing broker on this run's Redis prefix (what a worker process uses)."""
    b = create_broker(services.redis_url, services.redis_prefix, lambda _c, _d: None)
    await b.start()
    yield b
    await b.close()
