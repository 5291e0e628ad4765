"""Side by side: gigwire against python-socketio with AsyncRedisManager, same machine, same work.

    .venv/bin/python -m bench.compare.run            # the whole comparison, about 6-8 minutes
    .venv/bin/python -m bench.compare.run --quick    # 100 and 1,000 subscribers, 2,000 idle

Each system runs as two server processes sharing the Redis at 127.0.0.1:6379 (gigwire: `python -m
hub` in dev mode with a scratch database on 127.0.0.1:5432, dropped after, and a unique
REDIS_PREFIX; python-socketio: bench/compare/sio_server.py on a unique channel). N clients in one
room (gigwire: subscribed to one order's chat; python-socketio: the room `bench`), split over both
processes, held by load-generator processes (bench/compare/loadgen.py) on several loopback source
addresses. Messages come from this process, an outside publisher (gigwire:
`hub.publish.publish_event` to `order:<id>`; python-socketio: `AsyncRedisManager(write_only=True)`).

Measured for each system: connections accepted per second and memory per idle connection (RSS
delta of both servers over `--idle` connections); then for N from the largest down: deliveries/s
at saturation (a burst of messages published as fast as this process can, divided by the time to
the last receipt) and p50/p99 latency at a fixed `--rate` deliveries/s. Finally the most
connections one gigwire process holds (up to `--single`). Results go to
bench/compare/results.json, the plot to bench/compare/compare.png (bench/compare/plot.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from bench.compare.systems import REDIS_URL, ROOT, Gigwire, SocketIO, System, rss_kb
from hub.db import create_pool, migrate_dsn
from hub.settings import Settings
from tests.factories import make_order, make_user
from tests.services import free_port

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
OUT = Path(__file__).resolve().parent


class Worker:
    """One load-generator process and its JSON-lines channel."""

    def __init__(self, proc: asyncio.subprocess.Process, addrs: list[str]) -> None:
        self.proc = proc
        self.addrs = addrs

    @classmethod
    async def spawn(cls, addrs: list[str]) -> Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.compare.loadgen",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=256 * 1024 * 1024,
        )
        return cls(proc, addrs)

    async def call(self, cmd: dict[str, Any], within: float = 180) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(orjson.dumps(cmd) + b"\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), within)
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
        started = time.monotonic()
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
        elapsed = time.monotonic() - started
        self.total = sum(r["total"] for r in replies)
        connected = sum(r["connected"] for r in replies)
        errors = [e for r in replies for e in r["errors"]]
        return {
            "connected": connected,
            "failed": sum(r["failed"] for r in replies),
            "seconds": elapsed,
            "per_s": connected / elapsed if elapsed else 0.0,
            "errors": errors[:3],
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
        """Wait (at most 60 s) until no message has arrived for 1 s: what a phase left in flight
        must not count in the next one."""
        replies = await self.all({"cmd": "quiet", "gap": 1.0, "timeout": 60}, 90)
        return all(r["quiet"] for r in replies)

    async def saturation(self, messages: int, concurrency: int = 32) -> dict[str, Any]:
        """Publish `messages` as fast as possible; deliveries/s up to the last receipt."""
        await self.settle()
        await self.all({"cmd": "reset"})
        started = time.monotonic_ns()
        counter = iter(range(messages))

        async def publisher() -> None:
            for i in counter:
                await self.system.publish(i)

        await asyncio.gather(*(publisher() for _ in range(concurrency)))
        published = time.monotonic_ns()
        replies = await self.all({"cmd": "report", "expected": messages, "timeout": 60}, 120)
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

    def rss_kb(self) -> int:
        return sum(rss_kb(p.pid) for p in self.system.procs)


async def measure(system: System, workers: list[Worker], args: argparse.Namespace) -> dict[str, Any]:
    """Connections, memory, then saturation and latency for each N, largest N first."""
    bench = Bench(system, workers)
    result: dict[str, Any] = {"system": system.name}
    await system.start()
    try:
        await asyncio.sleep(1.0)
        before = bench.rss_kb()
        spy = Profiler(args.profile, system.procs[0].pid, f"{system.name}-connect")
        conn = await bench.connect_to(args.idle)
        spy.stop()
        print(
            f"  {system.name}: {conn['connected']} connections in {conn['seconds']:.1f} s"
            f" ({conn['per_s']:,.0f}/s, {conn['failed']} failed {conn['errors']})",
            flush=True,
        )
        await asyncio.sleep(3.0)
        after = bench.rss_kb()
        result["connect"] = conn
        result["memory"] = {
            "connections": bench.total,
            "rss_before_kb": before,
            "rss_after_kb": after,
            "kb_per_connection": (after - before) / max(1, bench.total),
        }
        print(
            f"  {system.name}: RSS {before / 1024:.0f} -> {after / 1024:.0f} MiB,"
            f" {(after - before) / max(1, bench.total):.1f} KiB per connection",
            flush=True,
        )
        points = []
        for n in sorted(args.subscribers, reverse=True):
            await bench.drop_to(n)
            messages = max(20, min(args.burst_max, args.burst_deliveries // bench.total))
            spy = Profiler(args.profile, system.procs[0].pid, f"{system.name}-saturation-{n}")
            sat = await bench.saturation(messages)
            spy.stop()
            await asyncio.sleep(1.0)
            spy = Profiler(args.profile, system.procs[0].pid, f"{system.name}-latency-{n}")
            lat = await bench.latency(args.rate, args.seconds)
            spy.stop()
            points.append({"subscribers": bench.total, "saturation": sat, "latency": lat})
            print(
                f"  {system.name} N={bench.total}: {sat['deliveries_per_s']:,.0f} deliveries/s"
                f" ({sat['received']}/{sat['expected']} in {sat['seconds']:.2f} s);"
                f" at {args.rate:,.0f}/s p50 {lat['p50_ms']:.1f} ms p99 {lat['p99_ms']:.1f} ms"
                f" ({lat['received']}/{lat['expected']})",
                flush=True,
            )
            await asyncio.sleep(0.5)
        result["points"] = points
        await bench.drop_to(0)
    finally:
        await system.close()
    return result


async def single_process(gig: Gigwire, workers: list[Worker], target: int) -> dict[str, Any]:
    """The most connections one gigwire process holds, up to `target`."""
    one = Gigwire(gig.dsn, gig.prefix, gig.secret, [free_port()], gig.tokens, gig.order)
    bench = Bench(one, workers)
    await one.start()
    try:
        before = bench.rss_kb()
        conn = await bench.connect_to(target)
        await asyncio.sleep(2.0)
        after = bench.rss_kb()
        sat = await bench.saturation(5)
        out = {
            "target": target,
            "held": bench.total,
            "connect": conn,
            "rss_before_kb": before,
            "rss_after_kb": after,
            "kb_per_connection": (after - before) / max(1, bench.total),
            "delivered_to": sat["received"] // 5,
            "saturation": sat,
        }
        print(
            f"  one gigwire process: {bench.total} connections held ({conn['failed']} refused:"
            f" {conn['errors'][:1]}), RSS {after / 1024:.0f} MiB, a burst of 5 reached"
            f" {sat['received']}/{sat['expected']}",
            flush=True,
        )
        await bench.drop_to(0)
        return out
    finally:
        await one.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    database = f"gigwire_bench_{uuid.uuid4().hex[:8]}"
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + database
    run = uuid.uuid4().hex[:8]
    prefix = f"gwbench:{run}:"
    secret = secrets.token_urlsafe(48)
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    workers: list[Worker] = []
    results: dict[str, Any] = {"args": vars(args), "started": time.time()}
    try:
        await migrate_dsn(dsn)
        pool = await create_pool(dsn, min_size=1, max_size=2)
        client, doer = (
            await make_user(pool, Settings(jwt_secret=secret)),
            await make_user(pool, Settings(jwt_secret=secret)),
        )
        order_id = await make_order(pool, client, doer)
        await pool.close()
        per = args.addrs_per_worker
        workers = [
            await Worker.spawn([f"127.0.0.{2 + w * per + j}" for j in range(per)])
            for w in range(args.workers)
        ]
        gig = Gigwire(dsn, prefix, secret, [free_port(), free_port()], [client.token, doer.token], order_id)
        sio = SocketIO(f"gwbench-sio-{run}", [free_port(), free_port()])
        print(f"{args.workers} load generators; Redis {REDIS_URL}; gigwire prefix {prefix}", flush=True)
        results["systems"] = []
        for system in (gig, sio):
            if args.only and system.name != args.only:
                continue
            print(f"{system.name}:", flush=True)
            results["systems"].append(await measure(system, workers, args))
        if args.single:
            results["single"] = await single_process(gig, workers, args.single)
    finally:
        for worker in workers:
            await worker.quit()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    results["seconds"] = time.time() - results["started"]
    return results


def table(results: dict[str, Any], rate: float) -> str:
    """The README table: each measure for both systems and gigwire's ratio."""
    g, s = results["systems"]
    rows = ["| measure | gigwire | python-socketio | ratio |", "|---|---:|---:|---:|"]
    for gp, sp in zip(g["points"], s["points"], strict=True):
        n = gp["subscribers"]
        gd, sd = gp["saturation"]["deliveries_per_s"], sp["saturation"]["deliveries_per_s"]
        rows.append(
            f"| deliveries/s at saturation, {n:,} subscribers | {gd:,.0f} | {sd:,.0f} | {gd / sd:.1f}x |"
        )
    for gp, sp in zip(g["points"], s["points"], strict=True):
        n = gp["subscribers"]
        for q in ("p50", "p99"):
            gl, sl = gp["latency"][f"{q}_ms"], sp["latency"][f"{q}_ms"]
            label = f"{q} latency at {rate:,.0f} deliveries/s, {n:,} subscribers"
            rows.append(f"| {label} | {gl:.1f} ms | {sl:.1f} ms | {gl / sl:.2f} |")
    gm, sm = g["memory"], s["memory"]
    gk, sk = gm["kb_per_connection"], sm["kb_per_connection"]
    label = f"memory per idle connection ({gm['connections']:,} connections)"
    rows.append(f"| {label} | {gk:.1f} KiB | {sk:.1f} KiB | {gk / sk:.2f} |")
    gc, sc = g["connect"], s["connect"]
    ga, sa = gc["per_s"], sc["per_s"]
    rows.append(f"| connections accepted per second | {ga:,.0f} | {sa:,.0f} | {ga / sa:.2f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, nargs="+", default=[100, 1000, 3000, 10000])
    parser.add_argument("--idle", type=int, default=10000, help="connections for memory and accept rate")
    parser.add_argument("--rate", type=float, default=20000, help="deliveries/s of the latency phase")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the latency phase")
    parser.add_argument(
        "--burst-deliveries", type=int, default=400_000, help="deliveries per saturation burst"
    )
    parser.add_argument("--burst-max", type=int, default=4000, help="most messages in one burst")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes")
    parser.add_argument("--addrs-per-worker", type=int, default=4, help="loopback source addresses each")
    parser.add_argument(
        "--single", type=int, default=20000, help="connections for one gigwire process (0: skip)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="100 and 1,000 subscribers, 2,000 idle, no single"
    )
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--profile", choices=("flamegraph", "raw"), help="py-spy samples of the first server, per phase"
    )
    parser.add_argument("--only", choices=("gigwire", "python-socketio"), help="measure one system")
    args = parser.parse_args()
    if args.quick:
        args.subscribers, args.idle, args.single = [100, 1000], 2000, 0
    args.subscribers = [n for n in args.subscribers if n <= args.idle]
    results = asyncio.run(main(args))
    # A profiled run is slower: its figures go next to its profiles, not into the README's.
    where = OUT / "profiles" / "results.json" if args.profile else OUT / "results.json"
    where.write_text(json.dumps(results, indent=1))
    print()
    if len(results["systems"]) == 2:
        print(table(results, args.rate))
    print(f"\nwhole run: {results['seconds']:.0f} s; results in {where}")
    if not args.no_plot and not args.profile:
        subprocess.run([sys.executable, "-m", "bench.compare.plot"], cwd=ROOT, check=False)
