"""Fixtures of the session tests: a cluster of real processes (two `python -m hub` on this run's
Redis and database, and one `python -m workers` whose relay publishes the outbox), logging in
through their REST API (the code read from the hub's log, as in dev mode), and clients of both
transports that record how their connection ended."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import socketio

from tests.conftest import TEST_JWT_SECRET
from tests.factories import random_phone
from tests.hub.conftest import make_node, pair
from tests.services import Services, free_port

__all__ = ["make_node", "pair"]  # the hub tests' nodes and order pairs, as fixtures here too

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str = ""


@dataclass
class Cluster:
    """Two hub processes (`hubs[0]`, `hubs[1]`) and a worker process, on one Redis and database."""

    hubs: list[Proc]
    worker: Proc

    def otp(self, phone: str, within: float = 5.0) -> str:
        """The last login code the hubs logged for `phone` (dev mode logs them)."""
        deadline = time.monotonic() + within
        pattern = re.compile(rf"OTP code (\d{{6}}) for {re.escape(phone)}")
        while time.monotonic() < deadline:
            codes = [m for h in self.hubs for m in pattern.findall(h.log.read_text(errors="replace"))]
            if codes:
                return str(codes[-1])
            time.sleep(0.05)
        raise AssertionError(f"no code logged for {phone}")


def _env(services: Services, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": services.dsn,
        "REDIS_URL": services.redis_url,
        "REDIS_PREFIX": services.redis_prefix,
        "GIGWIRE_ENV": "dev",
        "GIGWIRE_DATA_DIR": str(data_dir),
        "JWT_SECRET": TEST_JWT_SECRET,
        "RUN_WORKERS": "false",
        "API_RATE_PER_IP": "1000000",
        "API_RATE_PER_USER": "1000000",
        "OTP_SENDS_PER_IP": "1000000",
        "TIMER_SWEEP_S": "3600",
        "LOG_LEVEL": "INFO",
        "REFRESH_REUSE_GRACE": "0",
        **extra,
    }


def _start(name: str, module: str, env: dict[str, str], tmp: Path) -> Proc:
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=out, stderr=out)
    return Proc(name, proc, log)


def _wait_healthy(hub: Proc, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if hub.proc.poll() is not None:
            raise AssertionError(f"{hub.name} exited: {hub.log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(hub.url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{hub.name} did not become healthy: {hub.log.read_text(errors='replace')[-2000:]}")


def _settle_outbox(dsn: str) -> None:
    """Mark the outbox rows earlier tests of the run left unpublished (they ran without workers) as
    published, so the relay starts with this module's events, not with a backlog of thousands."""

    async def settle() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as executor:  # whatever loop the caller runs
        executor.submit(asyncio.run, settle()).result()


@pytest.fixture(scope="module")
def cluster(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two hubs and a relay, started once for the module and stopped (SIGTERM, then SIGKILL) after."""
    tmp = tmp_path_factory.mktemp("cluster")
    _settle_outbox(services.dsn)
    hubs: list[Proc] = []
    for name in ("hub-a", "hub-b"):
        port = free_port()
        env = _env(services, tmp / name, HOST="127.0.0.1", PORT=str(port))
        hub = _start(name, "hub", env, tmp)
        hub.url = f"http://127.0.0.1:{port}"
        hubs.append(hub)
    worker = _start("workers", "workers", _env(services, tmp / "workers"), tmp)
    procs = [*hubs, worker]
    try:
        for hub in hubs:
            _wait_healthy(hub)
        yield Cluster(hubs, worker)
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.proc.terminate()
        for p in procs:
            try:
                p.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait()


@dataclass
class Login:
    user_id: str
    phone: str
    token: str
    refresh: str


async def login(http: aiohttp.ClientSession, cluster: Cluster, phone: str | None = None) -> Login:
    """Log in through hub A's REST API: send-otp, the code from the log, verify-otp."""
    phone = phone or random_phone()
    base = cluster.hubs[0].url
    async with http.post(base + "/api/auth/send-otp", json={"phone": phone}) as resp:
        assert resp.status == 200, await resp.text()
    code = await asyncio.to_thread(cluster.otp, phone)
    async with http.post(base + "/api/auth/verify-otp", json={"phone": phone, "otp": code}) as resp:
        body = await resp.json()
        assert resp.status == 200, body
    data = body["data"]
    return Login(data["user"]["id"], phone, data["token"], data["refreshToken"])


class WsClient:
    """A raw /ws client that records every frame and, once the server closes, the close code."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.ended = asyncio.Event()
        self.ended_at = 0.0
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.frames.append(orjson.loads(msg.data))
        self.close_code = self.ws.close_code
        self.ended_at = time.monotonic()
        self.ended.set()

    async def send(self, kind: str, data: dict[str, Any] | None = None, ref: str | None = None) -> None:
        frame: dict[str, Any] = {"type": kind}
        if data is not None:
            frame["data"] = data
        if ref is not None:
            frame["ref"] = ref
        await self.ws.send_str(orjson.dumps(frame).decode())

    async def wait_for(self, kind: str, within: float = 5.0, after: int = 0) -> dict[str, Any]:
        """The first frame of `kind` from index `after` on."""
        async with asyncio.timeout(within):
            while True:
                for frame in self.frames[after:]:
                    if frame["type"] == kind:
                        return frame
                if self.ended.is_set():
                    raise AssertionError(f"closed {self.close_code} before {kind}: {self.frames}")
                await asyncio.sleep(0.01)

    def types(self) -> list[str]:
        return [f["type"] for f in self.frames]

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


async def ws_open(http: aiohttp.ClientSession, base: str, token: str | None = None) -> WsClient:
    """A /ws connection to `base`, the token in the query when given."""
    url = base.replace("http://", "ws://") + "/ws" + (f"?token={token}" if token else "")
    return WsClient(await http.ws_connect(url))


class SioClient:
    """A Socket.IO client that records events (with their arrival) and how it ended."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.connect_error: Any = None
        self.ended = asyncio.Event()
        self.ended_at = 0.0

        async def any_event(event: str, data: Any = None) -> None:
            self.events.append((event, data))

        async def connect_error(data: Any = None) -> None:
            self.connect_error = data

        async def disconnect(*_args: Any) -> None:
            self.ended_at = time.monotonic()
            self.ended.set()

        self.client.on("*", any_event)
        self.client.on("connect_error", connect_error)
        self.client.on("disconnect", disconnect)

    async def wait_for(self, event: str, within: float = 5.0) -> Any:
        async with asyncio.timeout(within):
            while True:
                for name, data in self.events:
                    if name == event:
                        return data
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self.client.disconnect()


async def sio_open(base: str, token: str) -> SioClient:
    """A Socket.IO connection to `base`, authenticated in the handshake, AUTHENTICATED received."""
    conn = SioClient()
    await conn.client.connect(base, auth={"token": token}, transports=["websocket"], wait_timeout=5)
    await conn.wait_for("AUTHENTICATED")
    return conn


async def sio_refused(base: str, token: str) -> Any:
    """The CONNECT_ERROR data of a handshake with `token` (which must be refused)."""
    conn = SioClient()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await conn.client.connect(base, auth={"token": token}, transports=["websocket"], wait_timeout=5)
    data: Any = conn.connect_error["data"]  # CONNECT_ERROR is {message, data}; data is the error object
    return data
