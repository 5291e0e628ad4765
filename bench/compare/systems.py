"""The two systems under test, each as server processes plus an outside publisher, for
bench/compare/run.py: gigwire (`python -m hub`, raw /ws, `hub.publish.publish_event` to
`order:<id>`) and python-socketio (`bench/compare/sio_server.py`, `AsyncRedisManager.emit` to a
room). Both publishers stamp each message with `"t": monotonic ns` as its last field."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import socketio

from hub.broker import Broker
from hub.publish import publish_event

try:
    from hub.brokers import create_broker
except ImportError:  # gigwire before issue 11 (GIGWIRE_TREE naming an older checkout)
    from hub.broker import create_broker  # type: ignore[attr-defined,no-redef]

# The checkout whose `python -m hub` is measured: this one, or GIGWIRE_TREE (run then with that
# checkout's .venv/bin/python, which imports its hub).
ROOT = Path(os.environ.get("GIGWIRE_TREE") or Path(__file__).resolve().parents[2]).resolve()
REDIS_URL = "redis://127.0.0.1:6379/0"


def rss_kb(pid: int) -> int:
    """Resident set size of process `pid` in KiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_ticks(pid: int) -> int:
    """User plus system CPU time of process `pid` so far, in clock ticks (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)


async def wait_ready(port: int, path: str, proc: subprocess.Popen[bytes]) -> None:
    """Poll `path` until it answers 200 (at most 30 s)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
            try:
                async with http.get(f"http://127.0.0.1:{port}{path}") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not become ready")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process, SIGKILL after 15 s."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class System(Protocol):
    name: str
    procs: list[subprocess.Popen[bytes]]
    ports: list[int]
    tokens: list[str]
    order: str

    async def start(self) -> None: ...
    async def publish(self, i: int) -> None: ...
    async def close(self) -> None: ...


@dataclass
class Gigwire:
    """Two `python -m hub` processes sharing Redis (dev mode with a scratch DATABASE_URL)."""

    dsn: str
    prefix: str
    secret: str
    ports: list[int]
    tokens: list[str]
    order: str
    name: str = "gigwire"
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _broker: Broker | None = None
    _channel: str = ""

    def env(self, port: int) -> dict[str, str]:
        return {
            **os.environ,
            "GIGWIRE_ENV": "dev",
            "DATABASE_URL": self.dsn,
            "REDIS_URL": REDIS_URL,
            "REDIS_PREFIX": self.prefix,
            "JWT_SECRET": self.secret,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "RUN_WORKERS": "false",
            "LOG_LEVEL": "WARNING",
            # A saturation burst queues up to a few thousand frames per session: above the
            # default bound of 1,000 (which closes slow readers with 1013).
            "WS_QUEUE_MAX_FRAMES": "100000",
            "WS_QUEUE_MAX_BYTES": str(64 * 1024 * 1024),
        }

    async def start(self) -> None:
        for port in self.ports:
            self.procs.append(
                subprocess.Popen(  # noqa: ASYNC220 -- a fork at start, before any load
                    [sys.executable, "-m", "hub"], cwd=ROOT, env=self.env(port), stdout=subprocess.DEVNULL
                )
            )
        for port, proc in zip(self.ports, self.procs, strict=True):
            await wait_ready(port, "/readyz", proc)
        self._broker = create_broker(REDIS_URL, self.prefix, lambda _c, _d: None)
        await self._broker.start()
        self._channel = f"order:{self.order}"

    async def publish(self, i: int) -> None:
        assert self._broker is not None
        data = {"orderId": self.order, "i": i, "t": time.monotonic_ns()}
        await publish_event(self._broker, self._channel, "ORDER_UPDATE", data)

    async def close(self) -> None:
        if self._broker is not None:
            await self._broker.close()
        stop(self.procs)


@dataclass
class SocketIO:
    """Two python-socketio AsyncServer processes (aiohttp) with AsyncRedisManager on one channel."""

    channel: str
    ports: list[int]
    name: str = "python-socketio"
    tokens: list[str] = field(default_factory=list)
    order: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _manager: Any = None

    async def start(self) -> None:
        for port in self.ports:
            cmd = [sys.executable, "-m", "bench.compare.sio_server", "--port", str(port)]
            cmd += ["--redis", REDIS_URL, "--channel", self.channel]
            self.procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL))  # noqa: ASYNC220
        for port, proc in zip(self.ports, self.procs, strict=True):
            await wait_ready(port, "/healthz", proc)
        self._manager = socketio.AsyncRedisManager(REDIS_URL, channel=self.channel, write_only=True)

    async def publish(self, i: int) -> None:
        await self._manager.emit("bench", {"i": i, "t": time.monotonic_ns()}, room="bench", namespace="/")

    async def close(self) -> None:
        stop(self.procs)
