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
import json
import secrets
import subprocess
import sys
import time
import uuid
from typing import Any

import asyncpg

from bench.compare.phases import OUT, Bench, Profiler, Worker
from bench.compare.systems import REDIS_URL, ROOT, Gigwire, SocketIO, System
from hub.db import create_pool, migrate_dsn
from hub.settings import Settings
from tests.factories import make_order, make_user
from tests.services import free_port

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


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
            f" ({conn['per_s']:,.0f}/s, {conn['failed']} failed {conn['errors']});"
            f" server CPU {conn['server_cpu_us_per_connection']:,.0f} us per connection,"
            f" load average {conn['load_average']:.2f}",
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
                f" ({sat['received']}/{sat['expected']} in {sat['seconds']:.2f} s,"
                f" server CPU {sat['server_cpu_us_per_delivery']:.2f} us per delivery,"
                f" load average {sat['load_average']:.2f});"
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
