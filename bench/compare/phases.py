"""The measured phases of the side-by-side benchmark (bench/compare/run.py): the load-generator
processes and their JSON-lines channel, py-spy around a phase, and `Bench`, which grows and shrinks the
connections and times saturation and latency for one system."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench.compare.systems import ROOT, System, cpu_ticks, rss_kb

OUT = Path(__file__).resolve().parent
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


class Worker:
    """One load-generator process (`module`, run with -m) and its JSON-lines channel; a call waits
    `within` seconds for its reply unless told otherwise."""

    def __init__(self, proc: asyncio.subprocess.Process, addrs: list[str], within: float = 180) -> None:
        self.proc = proc
        self.addrs = addrs
        self.within = within

    @classmethod
    async def spawn(
        cls, addrs: list[str], module: str = "bench.compare.loadgen", within: float = 180
    ) -> Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=256 * 1024 * 1024,
        )
        return cls(proc, addrs, within)

    async def call(self, cmd: dict[str, Any], within: float | None = None) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(orjson.dumps(cmd) + b"\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), within or self.within)
        if not line:
            raise RuntimeError("load generator exited")
        reply: dict[str, Any] = orjson.loads(line)
        return reply

    async def quit(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(RuntimeError, TimeoutError, OSError):
                await self.call({"cmd": "quit"}, 1)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def percentile(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] / 1000.0


class Profiler:
    """py-spy sampling one server process over a phase (`--profile`): a flame graph SVG or the
    collapsed stacks (`raw`), under bench/compare/profiles/."""

    def __init__(self, fmt: str | None, pid: int, name: str) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        if fmt:
            out = OUT / "profiles"
            out.mkdir(exist_ok=True)
            spy = Path(sys.executable).parent / "py-spy"
            cmd = [str(spy), "record", "--nonblocking", "-r", "250", "-p", str(pid)]
            if fmt == "flamegraph":
                cmd += ["-o", str(out / f"{name}.svg")]
            else:  # collapsed stacks, one line each, for top tables
                cmd += ["-f", "raw", "-o", str(out / f"{name}.txt")]
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Bench:
    """One system's measurements through a set of load-generator workers."""

    def __init__(self, system: System, workers: list[Worker]) -> None:
        self.system = system
        self.workers = workers
        self.total = 0

    async def all(self, cmd: dict[str, Any], within: float = 180) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(w.call(cmd, within) for w in self.workers)))

    async def connect_to(self, n: int, ports: list[int] | None = None) -> dict[str, Any]:
        """Grow to `n` connections (split over workers and server processes); time it."""
        need = n - self.total
        share = [
            need // len(self.workers) + (1 if i < need % len(self.workers) else 0)
            for i in range(len(self.workers))
        ]
        started, cpu = time.monotonic(), self.cpu_s()
        replies = await asyncio.gather(
            *(
                w.call(
                    {
                        "cmd": "connect",
                        "count": count,
                        "system": "gigwire" if self.system.name == "gigwire" else "sio",
                        "ports": ports or self.system.ports,
                        "tokens": self.system.tokens,
                        "order": self.system.order,
                        "local_addrs": w.addrs,
                        "concurrency": 64,
                        "timeout": 150,
                    },
                    200,
                )
                for w, count in zip(self.workers, share, strict=True)
            )
        )
        elapsed, cpu = time.monotonic() - started, self.cpu_s() - cpu
        self.total = sum(r["total"] for r in replies)
        connected = sum(r["connected"] for r in replies)
        errors = [e for r in replies for e in r["errors"]]
        return {
            "connected": connected,
            "failed": sum(r["failed"] for r in replies),
            "seconds": elapsed,
            "per_s": connected / elapsed if elapsed else 0.0,
            "errors": errors[:3],
            "server_cpu_s": cpu,
            "server_cpu_us_per_connection": cpu / max(1, connected) * 1e6,
            "load_average": os.getloadavg()[0],
        }

    async def drop_to(self, n: int) -> None:
        """Close connections until `n` remain, evenly over workers (so over server processes too)."""
        excess = self.total - n
        if excess <= 0:
            return
        share = [
            excess // len(self.workers) + (1 if i < excess % len(self.workers) else 0)
            for i in range(len(self.workers))
        ]
        replies = await asyncio.gather(
            *(w.call({"cmd": "drop", "count": c}) for w, c in zip(self.workers, share, strict=True))
        )
        self.total = sum(r["total"] for r in replies)
        await asyncio.sleep(1.0)

    async def settle(self) -> bool:
        """Wait (at most 60 s) until no message has arrived for 1 s, then (at most 30 s more) until
        the servers are idle (under 5% of a core over 0.5 s): what a phase left in flight, and the
        servers' cleanup of closed connections, must not count in the next one."""
        replies = await self.all({"cmd": "quiet", "gap": 1.0, "timeout": 60}, 90)
        quiet = all(r["quiet"] for r in replies)
        pids = [p.pid for p in self.system.procs]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            before = sum(cpu_ticks(pid) for pid in pids)
            await asyncio.sleep(0.5)
            if sum(cpu_ticks(pid) for pid in pids) - before <= 0.05 * 0.5 * _TICKS_PER_S:
                return quiet
        return False

    async def saturation(self, messages: int, concurrency: int = 32) -> dict[str, Any]:
        """Publish `messages` as fast as possible; deliveries/s up to the last receipt."""
        await self.settle()
        await self.all({"cmd": "reset"})
        started, cpu = time.monotonic_ns(), self.cpu_s()
        counter = iter(range(messages))

        async def publisher() -> None:
            for i in counter:
                await self.system.publish(i)

        await asyncio.gather(*(publisher() for _ in range(concurrency)))
        published = time.monotonic_ns()
        replies = await self.all({"cmd": "report", "expected": messages, "timeout": 60}, 120)
        cpu = self.cpu_s() - cpu
        received = sum(r["received"] for r in replies)
        last = max(r["last"] for r in replies)
        seconds = (last - started) / 1e9 if last else float("nan")
        return {
            "messages": messages,
            "received": received,
            "expected": messages * self.total,
            "closed": sum(r["closed"] for r in replies),
            "publish_s": (published - started) / 1e9,
            "seconds": seconds,
            "deliveries_per_s": received / seconds if last else 0.0,
            "server_cpu_s": cpu,
            "server_cpu_us_per_delivery": cpu / max(1, received) * 1e6,
            "load_average": os.getloadavg()[0],
        }

    async def latency(self, deliveries_per_s: float, seconds: float) -> dict[str, Any]:
        """Publish at a fixed rate of deliveries/s; delivery latency percentiles."""
        rate = deliveries_per_s / self.total
        count = max(5, int(rate * seconds))
        settled = await self.settle()
        await self.all({"cmd": "reset"})
        started = time.monotonic()
        for i in range(count):
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            await self.system.publish(i)
        replies = await self.all({"cmd": "report", "expected": count, "timeout": 30}, 60)
        lat = [v for r in replies for v in r["latencies_us"]]
        received = sum(r["received"] for r in replies)
        return {
            "messages": count,
            "rate_msgs_per_s": rate,
            "received": received,
            "expected": count * self.total,
            "p50_ms": percentile(lat, 0.50),
            "p99_ms": percentile(lat, 0.99),
            "max_ms": max(lat) / 1000.0 if lat else float("nan"),
            "settled_before": settled,
        }

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the system's server processes spent so far."""
        return sum(cpu_ticks(p.pid) for p in self.system.procs) / _TICKS_PER_S

    def rss_kb(self) -> int:
        return sum(rss_kb(p.pid) for p in self.system.procs)
