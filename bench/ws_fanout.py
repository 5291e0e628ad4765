"""Fan-out benchmark of the realtime hub: N subscribers of one order, spread over two `python -m hub`
processes sharing Redis; one sender on the first process. Reports deliveries per second and the
send-to-deliver latency (client send to subscriber receipt, same clock) at p50/p99.

    .venv/bin/python bench/ws_fanout.py --subscribers 100 --rate 100 --seconds 3 --burst 1000

Needs PostgreSQL on 127.0.0.1:5432 (user postgres; a scratch database is created and dropped) and
Redis on 127.0.0.1:6379 (a unique key prefix). Both hub processes are killed at the end.

Beside each phase it prints the CPU time (utime + stime from /proc) both hub processes spent in it,
per delivery (per connection for the connect phase), and the load average: on a shared machine the
wall-clock figures move with the other processes, the CPU per delivery much less. GIGWIRE_TREE
names another checkout to benchmark (run it with that checkout's .venv/bin/python):

    GIGWIRE_TREE=../before ../before/.venv/bin/python bench/ws_fanout.py"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import aiohttp
import asyncpg
import orjson

ROOT = Path(os.environ.get("GIGWIRE_TREE") or Path(__file__).resolve().parent.parent).resolve()
sys.path.insert(0, str(ROOT))

from hub.db import create_pool, migrate_dsn  # noqa: E402
from hub.settings import Settings  # noqa: E402
from tests.factories import make_order, make_user  # noqa: E402
from tests.services import free_port  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_s(procs: Sequence[subprocess.Popen[bytes]]) -> float:
    """User plus system CPU seconds the processes spent so far (fields 14 and 15 of /proc/pid/stat)."""
    ticks = 0
    for proc in procs:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / TICKS_PER_S


class Usage:
    """The hub processes' CPU seconds and the load average over one phase."""

    def __init__(self, procs: Sequence[subprocess.Popen[bytes]]) -> None:
        self.procs = procs
        self.cpu = cpu_s(procs)
        self.load = os.getloadavg()[0]

    def line(self, per: int, unit: str) -> str:
        cpu = cpu_s(self.procs) - self.cpu
        return (
            f"  hub CPU {cpu:.2f} s = {cpu / max(1, per) * 1e6:,.1f} us per {unit};"
            f" load average {self.load:.2f} -> {os.getloadavg()[0]:.2f}"
        )


async def start_node(port: int, dsn: str, prefix: str, secret: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GIGWIRE_ENV": "dev",
        "DATABASE_URL": dsn,
        "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": prefix,
        "JWT_SECRET": secret,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "RUN_WORKERS": "false",
        "LOG_LEVEL": "WARNING",
        "CHAT_RATE_PER_S": "1000000",
        "CHAT_BURST": "1000000",
        "WS_QUEUE_MAX_FRAMES": "100000",
        "WS_QUEUE_MAX_BYTES": str(256 * 1024 * 1024),
    }
    command = [sys.executable, "-m", "hub"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)  # noqa: ASYNC220
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    if resp.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"hub on port {port} did not become ready")


class Subscriber:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, expected: int) -> None:
        self.ws = ws
        self.expected = expected
        self.latencies_ns: list[int] = []
        self.last_seq = 0
        self.out_of_order = 0
        self.done = asyncio.Event()

    async def run(self) -> None:
        async for msg in self.ws:
            now = time.perf_counter_ns()
            frame = orjson.loads(msg.data)
            if frame["type"] != "CHAT_MESSAGE":
                continue
            data = frame["data"]
            if data["seq"] != self.last_seq + 1:
                self.out_of_order += 1
            self.last_seq = data["seq"]
            self.latencies_ns.append(now - int(data["text"].split(":", 1)[1]))
            if len(self.latencies_ns) >= self.expected:
                self.done.set()


async def connect(
    http: aiohttp.ClientSession, port: int, token: str, order_id: str
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(f"http://127.0.0.1:{port}/ws?token={token}", max_msg_size=0)
    assert orjson.loads((await ws.receive()).data)["type"] == "AUTHENTICATED"
    await ws.send_str(
        orjson.dumps({"type": "SUBSCRIBE_CHAT", "data": {"orderId": order_id}, "ref": "s"}).decode()
    )
    assert orjson.loads((await ws.receive()).data)["type"] == "ACK"
    return ws


class Receiving(Protocol):
    """What `phase` needs of a subscriber, whatever its transport."""

    expected: int
    latencies_ns: list[int]
    done: asyncio.Event


async def phase(
    sender: aiohttp.ClientWebSocketResponse,
    subs: Sequence[Receiving],
    order_id: str,
    count: int,
    rate: float | None,
    timeout_s: float = 30.0,
) -> tuple[float, list[int]]:
    """Send `count` messages (at `rate` a second, or back to back); wait for every delivery."""
    for s in subs:
        s.latencies_ns.clear()
        s.expected = count
        s.done.clear()
    started = time.perf_counter()
    for i in range(count):
        if rate is not None:
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        text = f"{i}:{time.perf_counter_ns()}"
        frame = {"type": "CHAT_MESSAGE", "data": {"orderId": order_id, "text": text}}
        await sender.send_str(orjson.dumps(frame).decode())
    await asyncio.wait_for(asyncio.gather(*(s.done.wait() for s in subs)), timeout_s)
    return time.perf_counter() - started, [lat for s in subs for lat in s.latencies_ns]


def summary(name: str, count: int, subs: int, elapsed: float, latencies: list[int]) -> str:
    lat = sorted(latencies)
    p50 = lat[len(lat) // 2] / 1e6
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1e6
    return (
        f"{name}: {count} messages x {subs} subscribers = {len(lat)} deliveries in {elapsed:.2f} s"
        f" -> {len(lat) / elapsed:,.0f} deliveries/s; latency p50 {p50:.1f} ms, p99 {p99:.1f} ms,"
        f" max {lat[-1] / 1e6:.1f} ms, mean {statistics.fmean(lat) / 1e6:.1f} ms"
    )


async def main(args: argparse.Namespace) -> None:
    database = f"gigwire_bench_{uuid.uuid4().hex[:8]}"
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + database
    prefix = f"gwbench:{uuid.uuid4().hex[:8]}:"
    secret = secrets.token_urlsafe(48)
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    procs: list[subprocess.Popen[bytes]] = []
    try:
        await migrate_dsn(dsn)
        settings = Settings(jwt_secret=secret)
        pool = await create_pool(dsn, min_size=1, max_size=2)
        client, doer = await make_user(pool, settings), await make_user(pool, settings)
        order_id = await make_order(pool, client, doer)
        await pool.close()
        ports = [free_port(), free_port()]
        procs = list(await asyncio.gather(*(start_node(p, dsn, prefix, secret) for p in ports)))
        # No connector limit: every WebSocket holds one connection for its whole life.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            usage, started = Usage(procs), time.perf_counter()
            sender = await connect(http, ports[0], client.token, order_id)
            subs: list[Subscriber] = []
            for i in range(args.subscribers):
                user = client if i % 2 else doer
                subs.append(Subscriber(await connect(http, ports[i % 2], user.token, order_id), 0))
            readers = [asyncio.create_task(s.run()) for s in subs]
            print(
                f"{ROOT}: two hub processes on ports {ports}, {args.subscribers} subscribers (half on"
                f" each), Redis {REDIS_URL}"
            )
            print(f"connect: {len(subs) + 1} one after another in {time.perf_counter() - started:.2f} s")
            print(usage.line(len(subs) + 1, "connection"))
            await asyncio.sleep(1.0)  # the hubs' after-connect work (presence) is not the phase's
            usage, count = Usage(procs), int(args.rate * args.seconds)
            elapsed, lat = await phase(sender, subs, order_id, count, args.rate)
            print(summary(f"paced {args.rate:.0f} msg/s", count, len(subs), elapsed, lat))
            print(usage.line(len(lat), "delivery"))
            await asyncio.sleep(1.0)
            usage = Usage(procs)
            elapsed, lat = await phase(sender, subs, order_id, args.burst, None)
            print(summary("burst", args.burst, len(subs), elapsed, lat))
            print(usage.line(len(lat), "delivery"))
            print(f"out-of-order deliveries: {sum(s.out_of_order for s in subs)}")
            for task in readers:
                task.cancel()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=100.0, help="messages a second in the paced phase")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the paced phase")
    parser.add_argument(
        "--burst", type=int, default=1000, help="messages sent back to back in the burst phase"
    )
    asyncio.run(main(parser.parse_args()))
