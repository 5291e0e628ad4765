"""Two-party chat, side by side: gigwire against a python-socketio + asyncpg peer (bench/chatmix/peer.py).

    .venv/bin/python -m bench.chatmix.run                     # the whole run, about 10 minutes
    .venv/bin/python -m bench.chatmix.run --pairs 10 10 10 --seconds 2 --ramp-seconds 2 \\
        --ramp 1 4 --scenarios a c --rounds 1                  # a smoke run, about a minute

A scratch database on 127.0.0.1:5432 (BENCH_ADMIN_DSN to change it; dropped at the end) migrated with
gigwire's migrations plus the peer's two tables, with one in-progress order per pair of users.
Each system runs as two server processes sharing the Redis at 127.0.0.1:6379 (a unique prefix or
channel); every scenario starts them afresh. For each pair the client connects to the first process
and the doer to the second, both join the order's chat, then both send messages at a fixed rate (open
loop) and each waits for its ACK. Scenarios: (a) 500 pairs at 1 msg/s per connection, (b) 2,500
pairs at 0.2 msg/s, (c) 200 pairs stepped through per-connection rates until ACK p99 > 1 s or the
stored rate stops growing. Systems alternate (gigwire, peer, gigwire, peer with --rounds 2).

Per step: stored msgs/s (SQL count over the sending window), ACK and delivery p50/p99, losses
(ACKed but not delivered to the other party, unanswered, stored minus ACKed, and per-order seq
gaps or duplicates checked in SQL), server RSS per connection, server CPU, PostgreSQL CPU (the
scratch database's backends, and every postgres process) and WAL bytes per stored message, from
the start of sending until everything was answered and delivered. Results go to
bench/chatmix/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from bench.chatmix.peer import SCHEMA
from bench.chatmix.systems import (
    TICKS_PER_S,
    Servers,
    integrity,
    make_pairs,
    snapshot,
    stats,
    ticks_delta,
)
from bench.compare.phases import Worker, percentile
from bench.compare.systems import cpu_ticks
from hub.db import migrate_dsn
from tests.services import _with_database, free_port

ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
OUT = Path(__file__).resolve().parent / "results.json"


async def step(
    db: asyncpg.Connection,
    servers: Servers,
    workers: list[Worker],
    database: str,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    """One measured window: every connection sends at `rate` for `seconds`, then drains."""
    load_ticks = sum(cpu_ticks(w.proc.pid) for w in workers)
    s0 = await snapshot(db, servers, database, time.monotonic_ns())
    sent = await asyncio.gather(*(w.call({"cmd": "run", "rate": rate, "seconds": seconds}) for w in workers))
    t1 = time.monotonic_ns()
    stored_in_window = await db.fetchval(f"SELECT count(*) FROM {servers.table}") - s0.stored
    drained = stats(
        list(
            await asyncio.gather(*(w.call({"cmd": "drain", "timeout": max(30.0, seconds)}) for w in workers))
        )
    )
    s2 = await snapshot(db, servers, database, time.monotonic_ns())
    load_ticks = sum(cpu_ticks(w.proc.pid) for w in workers) - load_ticks
    stored = s2.stored - s0.stored
    wal = await db.fetchval(
        "SELECT pg_wal_lsn_diff($1::text::pg_lsn, $2::text::pg_lsn)", s2.wal_lsn, s0.wal_lsn
    )
    per_msg = 1000.0 / TICKS_PER_S / max(1, stored)  # ticks -> ms per stored message
    window = (t1 - s0.at_ns) / 1e9
    ack, delivery = drained.pop("ack_us"), drained.pop("delivery_us")
    return {
        "rate_per_connection": rate,
        "offered_per_s": sum(r["sent"] for r in sent) / window,
        "window_s": window,
        "drain_s": (s2.at_ns - t1) / 1e9,
        "stored": stored,
        "stored_per_s": stored_in_window / window,
        **drained,
        "stored_minus_acked": stored - drained["acked"],
        "ack_p50_ms": percentile(ack, 0.50),
        "ack_p99_ms": percentile(ack, 0.99),
        "delivery_p50_ms": percentile(delivery, 0.50),
        "delivery_p99_ms": percentile(delivery, 0.99),
        "hub_cpu_ms_per_msg": (s2.server_ticks - s0.server_ticks) * per_msg,
        "pg_cpu_ms_per_msg": ticks_delta(s0.pg_ours, s2.pg_ours) * per_msg,
        "pg_cpu_all_ms_per_msg": ticks_delta(s0.pg_every, s2.pg_every) * per_msg,
        "wal_bytes_per_msg": float(wal) / max(1, stored),
        "load_cpu_ms_per_msg": load_ticks * per_msg,
        "loadavg": os.getloadavg()[0],
        "integrity": await integrity(db, servers),
    }


async def scenario(
    name: str,
    servers: Servers,
    workers: list[Worker],
    pairs: list[list[str]],
    rates: list[float],
    args: argparse.Namespace,
    db: asyncpg.Connection,
    database: str,
) -> dict[str, Any]:
    """Fresh servers, the pairs connected, then one step per rate (the ramp stops at saturation)."""
    seconds = args.ramp_seconds if name == "c" else args.seconds
    await servers.start()
    try:
        await asyncio.sleep(1.0)
        rss0 = servers.rss_kb()
        n = len(workers)
        chunks = [pairs[i::n] for i in range(n)]
        cmds = [
            {
                "cmd": "connect",
                "system": servers.name,
                "ports": servers.ports,
                "pairs": chunk,
                "local_addrs": w.addrs,
            }
            for w, chunk in zip(workers, chunks, strict=True)
        ]
        started = time.monotonic()
        replies = await asyncio.gather(*(w.call(c) for w, c in zip(workers, cmds, strict=True)))
        connect_s = time.monotonic() - started
        conns = sum(r["connections"] for r in replies)
        await asyncio.sleep(2.0)
        rss1 = servers.rss_kb()
        out: dict[str, Any] = {
            "scenario": name,
            "system": servers.name,
            "pairs": len(pairs),
            "connections": conns,
            "connect_failed": sum(r["failed"] for r in replies),
            "connect_errors": [e for r in replies for e in r["errors"]][:3],
            "connect_s": connect_s,
            "rss_before_kb": rss0,
            "rss_after_kb": rss1,
            "kib_per_connection": (rss1 - rss0) / max(1, conns),
            "steps": [],
        }
        print(
            f"  {servers.name} {name}: {conns} connections in {connect_s:.1f} s"
            f" ({out['connect_failed']} failed), {out['kib_per_connection']:.1f} KiB each",
            flush=True,
        )
        best = 0.0
        for rate in rates:
            s = await step(db, servers, workers, database, rate, seconds)
            out["steps"].append(s)
            print(
                f"    {rate:g}/s per connection: offered {s['offered_per_s']:,.0f}/s, stored"
                f" {s['stored_per_s']:,.0f}/s; ACK p50/p99 {s['ack_p50_ms']:.1f}/{s['ack_p99_ms']:.1f} ms,"
                f" delivery {s['delivery_p50_ms']:.1f}/{s['delivery_p99_ms']:.1f} ms; lost {s['lost']},"
                f" unanswered {s['unanswered']}, errors {s['errors']},"
                f" stored-acked {s['stored_minus_acked']},"
                f" bad seq orders {s['integrity']['bad_seq_orders']}; hub {s['hub_cpu_ms_per_msg']:.2f},"
                f" pg {s['pg_cpu_ms_per_msg']:.2f} (all {s['pg_cpu_all_ms_per_msg']:.2f}) ms/msg,"
                f" WAL {s['wal_bytes_per_msg']:,.0f} B/msg; load avg {s['loadavg']:.1f}",
                flush=True,
            )
            if name == "c" and (s["ack_p99_ms"] > 1000 or s["stored_per_s"] < 1.05 * best):
                break
            best = max(best, s["stored_per_s"])
        return out
    finally:
        await asyncio.gather(*(w.call({"cmd": "close"}) for w in workers), return_exceptions=True)
        servers.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    database = f"chatmix_{uuid.uuid4().hex[:8]}"
    dsn = _with_database(ADMIN_DSN, database)
    run = uuid.uuid4().hex[:8]
    secret = secrets.token_urlsafe(48)
    plan = {"a": (args.pairs[0], [1.0]), "b": (args.pairs[1], [0.2]), "c": (args.pairs[2], args.ramp)}
    results: dict[str, Any] = {"args": vars(args), "started": time.time(), "runs": []}
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    workers: list[Worker] = []
    db: asyncpg.Connection | None = None
    try:
        await migrate_dsn(dsn)
        db = await asyncpg.connect(dsn)
        await db.execute(SCHEMA)
        pairs = await make_pairs(db, max(plan[s][0] for s in args.scenarios), secret)
        per = 2
        workers = [
            await Worker.spawn(
                [f"127.0.0.{2 + w * per + j}" for j in range(per)], "bench.chatmix.load", within=300
            )
            for w in range(args.workers)
        ]
        print(f"{len(pairs)} pairs; database {database}; {args.workers} load generators", flush=True)
        for rnd in range(1, args.rounds + 1):
            for system in args.systems:
                print(f"round {rnd}, {system}:", flush=True)
                for name in args.scenarios:
                    count, rates = plan[name]
                    servers = Servers(system, dsn, secret, [free_port(), free_port()], f"{run}{rnd}{name}")
                    out = await scenario(name, servers, workers, pairs[:count], rates, args, db, database)
                    results["runs"].append({"round": rnd, **out})
    finally:
        for worker in workers:
            await worker.quit()
        if db is not None:
            await db.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    results["seconds"] = time.time() - results["started"]
    return results


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def table(results: dict[str, Any]) -> str:
    """One row per system, round and scenario (the ramp: its step with the most stored msgs/s)."""
    head = (
        "| scenario | system | round | offered msg/s | stored msg/s | ACK p50 / p99 ms"
        " | delivery p50 / p99 ms | lost | KiB / conn | hub CPU ms/msg | PG CPU ms/msg (all postgres)"
        " | WAL B/msg |"
    )
    rows = [head, "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    labels = {"a": "a: pairs x 1 msg/s", "b": "b: pairs x 0.2 msg/s", "c": "c: ramp, saturation"}
    for r in sorted(results["runs"], key=lambda r: (r["scenario"], r["round"], r["system"] != "gigwire")):
        if not r["steps"]:
            continue
        s = max(r["steps"], key=lambda s: s["stored_per_s"]) if r["scenario"] == "c" else r["steps"][0]
        bad = s["lost"] + s["unanswered"] + abs(s["stored_minus_acked"]) + s["integrity"]["bad_seq_orders"]
        lost = "0" if bad == 0 and s["errors"] == 0 else (
            f"not delivered {s['lost']}, unanswered {s['unanswered']}, errors {s['errors']},"
            f" stored-acked {s['stored_minus_acked']}, bad orders {s['integrity']['bad_seq_orders']}"
        )  # fmt: skip
        if s["undrained"]:
            lost += " (drain bound reached: still in flight)"
        label = labels[r["scenario"]].replace("pairs", f"{r['pairs']:,} pairs")
        if r["scenario"] == "c":
            label += f" ({r['pairs']} pairs, {s['rate_per_connection']:g}/s per conn)"
        rows.append(
            f"| {label} | {r['system']} | {r['round']} | {_fmt(s['offered_per_s'], 0)}"
            f" | {_fmt(s['stored_per_s'], 0)}"
            f" | {_fmt(s['ack_p50_ms'])} / {_fmt(s['ack_p99_ms'])} | {_fmt(s['delivery_p50_ms'])} /"
            f" {_fmt(s['delivery_p99_ms'])} | {lost} | {_fmt(r['kib_per_connection'])}"
            f" | {s['hub_cpu_ms_per_msg']:.2f} | {s['pg_cpu_ms_per_msg']:.2f}"
            f" ({s['pg_cpu_all_ms_per_msg']:.2f})"
            f" | {_fmt(s['wal_bytes_per_msg'], 0)} |"
        )
    return "\n".join(rows)


def ramp_table(results: dict[str, Any]) -> str:
    """Every step of the saturation ramp."""
    rows = [
        "| system | round | msg/s per conn | offered msg/s | stored msg/s | ACK p50 / p99 ms"
        " | delivery p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["runs"]:
        if r["scenario"] != "c":
            continue
        for s in r["steps"]:
            rows.append(
                f"| {r['system']} | {r['round']} | {s['rate_per_connection']:g}"
                f" | {_fmt(s['offered_per_s'], 0)}"
                f" | {_fmt(s['stored_per_s'], 0)} | {_fmt(s['ack_p50_ms'])} / {_fmt(s['ack_p99_ms'])}"
                f" | {_fmt(s['delivery_p99_ms'])} |"
            )
    return "\n".join(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, nargs=3, default=[500, 2500, 200], metavar=("A", "B", "C"))
    parser.add_argument("--seconds", type=float, default=10.0, help="window of scenarios a and b")
    parser.add_argument("--ramp-seconds", type=float, default=5.0, help="window of each ramp step")
    parser.add_argument(
        "--ramp", type=float, nargs="+", default=[0.5, 1, 1.5, 2, 3, 4, 6], help="ramp rates per connection"
    )
    parser.add_argument("--scenarios", nargs="+", choices=("a", "b", "c"), default=["b", "a", "c"])
    parser.add_argument("--systems", nargs="+", choices=("gigwire", "peer"), default=["gigwire", "peer"])
    parser.add_argument("--rounds", type=int, default=2, help="gigwire, peer alternately, this many times")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    results = asyncio.run(main(args))
    args.out.write_text(json.dumps(results, indent=1, default=str))
    print()
    print(table(results))
    print()
    print(ramp_table(results))
    print(f"\nwhole run: {results['seconds']:.0f} s; results in {args.out}")
