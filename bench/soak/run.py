"""The soak (issue 13): two hub processes on a private Redis for `--duration` seconds (default 600)
under chat, read marks, typing and REST from 2,000 connections, with Redis restarted twice and one
hub SIGKILLed and restarted; then what was lost, doubled, refused or leaked.

    .venv/bin/python -m bench.soak.run                           # 10 minutes, 1,000 pairs
    .venv/bin/python -m bench.soak.run --duration 60 --pairs 200  # a short run, to debug

Not part of ./test. A scratch database on 127.0.0.1:5432 (BENCH_ADMIN_DSN to change it; dropped at
the end) with one in-progress order per pair (bench.chatmix.systems.make_pairs); a private
redis-server on a free port (never the shared one: it is restarted). Processes: hub A and hub B
(`python -m hub`, REDIS_URL, RUN_WORKERS=false) and one `python -m workers`, their JSON logs under
the run's directory. Load: bench/soak/load.py processes (bench.compare.phases.Worker), each pair's
client on hub A and doer on hub B, over raw /ws and Socket.IO in turn.

Faults, at fractions of the duration: Redis killed and started again (same port, empty) at 0.2 and
0.7, each down 3 s; hub B SIGKILLed at 0.45 and started again 3 s later (its clients reconnect to
hub A meanwhile). Every 10 s: each hub's RSS and the connections live.

At the end the load stops sending, resends until every message is ACKed, waits until each ACKed one
reached the other party, and the figures are checked in SQL: every ACKed message stored exactly
once with the seq its ACK said, nothing stored that was not ACKed, every order's seqs 1..n without
gap or duplicate. Also: REST answers by status (5xx, and whether a 503 carried Retry-After), closes by
code (1011), error-level log lines, RSS trend after the first minute. Results: bench/soak/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg

from bench.chatmix.systems import Servers, integrity, make_pairs
from bench.compare.phases import Worker
from bench.compare.systems import rss_kb, wait_ready
from hub.db import migrate_dsn
from rest import api_keys
from tests.services import RedisServer, _with_database, free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
OUT = Path(__file__).resolve().parent / "results.json"
SAMPLE_S = 10.0
WARMUP_S = 60.0
_FAILS = ("fail", "unr")  # REST outcomes without a status: failed over, failed, unreachable


class Cluster:
    """The hubs, the workers process and the private Redis of one soak."""

    def __init__(self, dsn: str, secret: str, logs: Path) -> None:
        self.redis = RedisServer()
        self.ports = [free_port(), free_port()]
        self.dsn = dsn
        self.secret = secret
        self.logs = logs
        self.hubs: list[subprocess.Popen[bytes] | None] = [None, None]
        self.starts = [0, 0]
        self.workers: subprocess.Popen[bytes] | None = None
        self.rss: list[list[tuple[float, int, int]]] = [[], []]  # (t, pid, KiB) per hub

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if k not in ("LOG_LEVEL",)},
            "GIGWIRE_ENV": "dev",
            "DATABASE_URL": self.dsn,
            "REDIS_URL": self.redis.url,
            "REDIS_PREFIX": "soak:",
            "JWT_SECRET": self.secret,
            "RUN_WORKERS": "false",
            "LOG_LEVEL": "INFO",
            "API_RATE_PER_IP": "10000000",
            "API_RATE_PER_USER": "10000000",
            **extra,
        }

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "ab") as log:
            return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)

    async def start_hub(self, i: int) -> None:
        self.starts[i] += 1
        env = self.env(HOST="127.0.0.1", PORT=str(self.ports[i]))
        proc = self._spawn(f"hub-{'ab'[i]}", [sys.executable, "-m", "hub"], env)
        self.hubs[i] = proc
        await wait_ready(self.ports[i], "/readyz", proc)

    async def start(self) -> None:
        self.redis.start()
        await asyncio.gather(self.start_hub(0), self.start_hub(1))
        self.workers = self._spawn("workers", [sys.executable, "-m", "workers"], self.env())

    def kill_hub(self, i: int) -> None:
        proc = self.hubs[i]
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.hubs[i] = None

    def sample(self, t: float) -> list[int | None]:
        out: list[int | None] = []
        for i, proc in enumerate(self.hubs):
            kib = None
            if proc is not None and proc.poll() is None:
                kib = rss_kb(proc.pid)
                self.rss[i].append((t, proc.pid, kib))
            out.append(kib)
        return out

    def stop(self) -> dict[str, int | None]:
        """SIGTERM everything; the exit codes (None: had to be killed)."""
        codes: dict[str, int | None] = {}
        named = [("hub-a", self.hubs[0]), ("hub-b", self.hubs[1]), ("workers", self.workers)]
        for _name, proc in named:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for name, proc in named:
            if proc is None:
                continue
            try:
                codes[name] = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                codes[name] = None
        self.redis.cleanup()
        return codes


def rss_trend(samples: list[tuple[float, int, int]]) -> list[dict[str, Any]]:
    """Per process (pid): KiB at the end of warm-up and at the end, and the least-squares slope in
    KiB per minute over the samples after its first WARMUP_S seconds."""
    out = []
    for pid in dict.fromkeys(p for _, p, _ in samples):
        mine = [(t, k) for t, p, k in samples if p == pid]
        start = mine[0][0]
        late = [(t, k) for t, k in mine if t - start >= WARMUP_S] or mine[-2:]
        slope = 0.0
        if len(late) >= 2:
            mt = sum(t for t, _ in late) / len(late)
            mk = sum(k for _, k in late) / len(late)
            var = sum((t - mt) ** 2 for t, _ in late)
            slope = sum((t - mt) * (k - mk) for t, k in late) / var * 60 if var else 0.0
        out.append(
            {
                "pid": pid,
                "samples": len(mine),
                "first_kib": mine[0][1],
                "after_warmup_kib": late[0][1],
                "last_kib": mine[-1][1],
                "max_kib": max(k for _, k in mine),
                "slope_kib_per_min": round(slope, 1),
            }
        )
    return out


def log_errors(logs: Path) -> dict[str, Any]:
    """Error-level lines (and lines that are not JSON, e.g. a library's bare traceback) per log."""
    out: dict[str, Any] = {}
    for path in sorted(logs.glob("*.log")):
        errors: Counter[str] = Counter()
        warnings: Counter[str] = Counter()
        raw = 0
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("gigwire "):  # the process's own banner on stdout
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raw += 1
                continue
            if not isinstance(record, dict):
                raw += 1
            elif record.get("level") in ("error", "critical"):
                errors[str(record.get("msg"))[:120]] += 1
            elif record.get("level") == "warning":
                warnings[str(record.get("msg"))[:120]] += 1
        out[path.stem] = {
            "error_lines": sum(errors.values()),
            "errors": dict(errors.most_common(10)),
            "warnings": dict(warnings.most_common(10)),
            "non_json_lines": raw,
        }
    return out


async def check_messages(db: asyncpg.Connection, acked: list[list[Any]]) -> dict[str, int]:
    """Every ACKed message stored exactly once with its ACK's seq; nothing stored unACKed."""
    await db.execute(
        "CREATE TEMP TABLE acked (sender_id uuid, client_msg_id text, seq bigint, order_id uuid)"
    )
    await db.copy_records_to_table(
        "acked", records=[(uuid.UUID(u), c, s, uuid.UUID(o)) for u, c, s, o in acked]
    )
    row = await db.fetchrow(
        """
        SELECT
          (SELECT count(*) FROM acked) AS acked,
          (SELECT count(*) FROM (SELECT 1 FROM acked GROUP BY sender_id, client_msg_id
                                 HAVING count(DISTINCT seq) > 1) d) AS acked_with_two_seqs,
          (SELECT count(*) FROM acked a WHERE NOT EXISTS (
              SELECT 1 FROM messages m WHERE m.order_id = a.order_id AND m.sender_id = a.sender_id
                AND m.client_msg_id = a.client_msg_id)) AS acked_not_stored,
          (SELECT count(*) FROM acked a JOIN messages m ON m.order_id = a.order_id
              AND m.sender_id = a.sender_id AND m.client_msg_id = a.client_msg_id
              WHERE m.seq <> a.seq) AS stored_with_another_seq,
          (SELECT count(*) FROM messages) AS stored,
          (SELECT count(*) FROM messages m WHERE NOT EXISTS (
              SELECT 1 FROM acked a WHERE m.order_id = a.order_id AND m.sender_id = a.sender_id
                AND m.client_msg_id = a.client_msg_id)) AS stored_not_acked,
          (SELECT count(*) FROM (SELECT 1 FROM messages GROUP BY order_id, sender_id, client_msg_id
                                 HAVING count(*) > 1) d) AS stored_twice,
          (SELECT count(*) FROM message_reads) AS read_marks
        """
    )
    assert row is not None
    return dict(row)


DEFAULT_PLAN = [(0.2, "redis"), (0.45, "hub"), (0.7, "redis")]


async def faults(
    cluster: Cluster,
    duration: float,
    t0: float,
    log: list[dict[str, Any]],
    plan: list[tuple[float, str]] = DEFAULT_PLAN,
) -> None:
    """The `plan`'s faults at their fractions of the run: by default Redis restarted at 0.2 and 0.7,
    hub B SIGKILLed at 0.45 and started again."""

    def note(what: str) -> None:
        log.append({"t": round(time.monotonic() - t0, 1), "fault": what})
        print(f"  [{time.monotonic() - t0:6.1f} s] {what}", flush=True)

    async def at(fraction: float) -> None:
        await asyncio.sleep(max(0.0, t0 + fraction * duration - time.monotonic()))

    for fraction, what in plan:
        await at(fraction)
        if what == "redis":
            note("redis killed")
            cluster.redis.stop()
            await asyncio.sleep(3)
            cluster.redis.start()
            note("redis started again")
        else:
            note("hub B SIGKILLed")
            cluster.kill_hub(1)
            await asyncio.sleep(3)
            await cluster.start_hub(1)
            note("hub B started again")


def _plan(args: argparse.Namespace) -> list[tuple[float, str]]:
    """The default faults, or `--redis-restarts N` Redis restarts spread evenly and no hub kill."""
    n = args.redis_restarts
    return DEFAULT_PLAN if n is None else [((i + 1) / (n + 1), "redis") for i in range(n)]


async def main(args: argparse.Namespace) -> dict[str, Any]:
    database = f"soak_{uuid.uuid4().hex[:8]}"
    dsn = _with_database(ADMIN_DSN, database)
    logs = Path(f"/tmp/gigwire-soak-{database}")
    logs.mkdir()  # noqa: ASYNC240
    secret = secrets.token_urlsafe(48)
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "logs": str(logs)}
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    cluster = Cluster(dsn, secret, logs)
    loaders: list[Worker] = []
    try:
        await migrate_dsn(dsn)
        db = await asyncpg.connect(dsn)
        pairs = [[*p, n] for n, p in enumerate(await make_pairs(db, args.pairs, secret))]
        _key_id, api_key = await api_keys.create(db, "soak", ["publish"])
        await cluster.start()
        loaders = [await Worker.spawn([], "bench.soak.load", within=300) for _ in range(args.loaders)]
        n = len(loaders)
        started = time.monotonic()
        replies = await asyncio.gather(
            *(
                w.call(
                    {
                        "cmd": "connect",
                        "ports": cluster.ports,
                        "pairs": pairs[i::n],
                        "rate": args.rate,
                        "read": args.read,
                        "typing": args.typing,
                        "rest_per_s": args.rest_per_s / n,
                        "feed_per_s": args.feed_per_s / n,
                        "api_key": api_key,
                    }
                )
                for i, w in enumerate(loaders)
            )
        )
        results["connected"] = {
            "connections": sum(r["connections"] for r in replies),
            "live": sum(r["live"] for r in replies),
            "seconds": round(time.monotonic() - started, 1),
        }
        print(f"connected: {results['connected']}", flush=True)
        t0 = time.monotonic()
        fault_log: list[dict[str, Any]] = []
        injecting = asyncio.create_task(
            faults(cluster, args.duration, t0, fault_log, _plan(args)) if args.faults else asyncio.sleep(0)
        )
        samples: list[dict[str, Any]] = []
        while (now := time.monotonic()) < t0 + args.duration:
            rss = cluster.sample(now - t0)
            status = await asyncio.gather(*(w.call({"cmd": "status"}) for w in loaders))
            sample = {
                "t": round(now - t0, 1),
                "rss_kib": rss,
                "live": sum(s["live"] for s in status),
                "acked": sum(s["acked"] for s in status),
                "pending": sum(s["pending"] for s in status),
                "load_average": os.getloadavg()[0],
            }
            samples.append(sample)
            print(f"  {sample}", flush=True)
            await asyncio.sleep(max(0.0, now + SAMPLE_S - time.monotonic()))
        await injecting
        print("stopping the load; draining", flush=True)
        finals = await asyncio.gather(*(w.call({"cmd": "stop", "timeout": 240}, 320) for w in loaders))
        acked = [m for f in finals for m in f.pop("messages")]
        merged: dict[str, Any] = {}
        for f in finals:
            for key, value in f.items():
                if isinstance(value, dict):
                    bucket = merged.setdefault(key, Counter())
                    bucket.update(value)
                elif isinstance(value, bool):
                    merged[key] = merged.get(key, True) and value
                elif isinstance(value, int):
                    merged[key] = merged.get(key, 0) + value
                elif isinstance(value, list):
                    merged[key] = merged.get(key, []) + value
        results["load"] = {k: dict(v) if isinstance(v, Counter) else v for k, v in merged.items()}
        results["samples"] = samples
        results["faults"] = fault_log
        results["sql"] = await check_messages(db, acked)
        results["integrity"] = await integrity(db, Servers("gigwire", dsn, secret, [], ""))
        await db.close()
    finally:
        for worker in loaders:
            await worker.quit()
        results["exit_codes"] = cluster.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    results["rss"] = {f"hub-{'ab'[i]}": rss_trend(cluster.rss[i]) for i in range(2)}
    results["logs_summary"] = log_errors(logs)
    return results


def summary(results: dict[str, Any]) -> str:
    """The figures bench/README.md quotes."""
    load, sql = results["load"], results["sql"]
    rest: dict[str, int] = load.get("rest", {})
    closes: dict[str, int] = load.get("closes", {})
    fives = sum(v for k, v in rest.items() if k.isdigit() and k.startswith("5"))
    lines = [
        f"connections: {results['connected']}",
        f"chat: {sql['acked']} ACKed, {sql['stored']} stored; acked_not_stored {sql['acked_not_stored']},"
        f" stored_twice {sql['stored_twice']}, stored_not_acked {sql['stored_not_acked']},"
        f" stored_with_another_seq {sql['stored_with_another_seq']}; undelivered {load['undelivered']};"
        f" orders with bad seqs {results['integrity']['bad_seq_orders']}; read marks {sql['read_marks']}",
        f"REST: {dict(sorted((k, v) for k, v in rest.items() if ' ' not in k or k.startswith(_FAILS)))}"
        f"; 5xx {fives}",
        f"closes by transport:code: {dict(sorted(closes.items()))}; 1011: "
        f"{sum(v for k, v in closes.items() if k.endswith(':1011'))}",
        f"errors answered: {load.get('errors', {})}; resends {load['resends']},"
        f" redelivered {load['redelivered']}, connects {load['connects']}",
        f"feed: {load.get('feed_published')} published (answered 200), {load.get('feed_received')}"
        f" received; missing {load.get('feed_missing')}, duplicates {load.get('feed_duplicates')},"
        f" users with feedSeq gaps {load.get('feed_users_with_gaps')};"
        f" publish answers {load.get('feed_publish_answers')}",
        f"exit codes: {results['exit_codes']}",
    ]
    for hub, trend in results["rss"].items():
        for seg in trend:
            lines.append(
                f"RSS {hub} pid {seg['pid']}: {seg['first_kib']} -> {seg['after_warmup_kib']} (1 min)"
                f" -> {seg['last_kib']} KiB (max {seg['max_kib']}), slope after warm-up"
                f" {seg['slope_kib_per_min']} KiB/min over {seg['samples']} samples"
            )
    for name, info in results["logs_summary"].items():
        lines.append(
            f"log {name}: {info['error_lines']} error lines {info['errors']}; non-JSON"
            f" {info['non_json_lines']}; warnings {info['warnings']}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load after connecting")
    parser.add_argument("--pairs", type=int, default=1000, help="order pairs (2 connections each)")
    parser.add_argument("--rate", type=float, default=0.025, help="chat messages/s per connection")
    parser.add_argument("--read", type=float, default=0.5, help="share of received messages marked read")
    parser.add_argument(
        "--typing", type=float, default=0.3, help="share of sends wrapped in TYPING_START/STOP"
    )
    parser.add_argument("--rest-per-s", type=float, default=10.0, help="REST calls/s in all")
    parser.add_argument("--loaders", type=int, default=2, help="load-generator processes")
    parser.add_argument(
        "--feed-per-s", type=float, default=5.0, help="NOTIFICATIONs/s published through the server API"
    )
    parser.add_argument(
        "--redis-restarts",
        type=int,
        default=None,
        help="only N Redis restarts, evenly spread (memory per restart)",
    )
    parser.add_argument(
        "--no-faults", dest="faults", action="store_false", help="steady load only (memory over time)"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    results = asyncio.run(main(args))
    args.out.write_text(json.dumps(results, indent=1, default=str))
    print()
    print(summary(results))
    print(f"\nresults in {args.out}; logs in {results['logs']}")
