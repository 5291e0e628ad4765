"""The two systems of the chat benchmark as server processes (gigwire: two `python -m hub`; the peer:
two bench/chatmix/peer.py), the scratch database's pairs, and the measurements taken around a step:
server and PostgreSQL CPU from /proc, server RSS, stored messages, WAL position, seq integrity."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bench.compare.systems import cpu_ticks, rss_kb, stop, wait_ready
from hub.settings import Settings
from hub.tokens import TokenCodec

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/0"
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass
class Servers:
    """Two server processes of one system; `table` is where it stores messages."""

    name: str
    dsn: str
    secret: str
    ports: list[int]
    tag: str  # unique per run: Redis prefix or channel
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def table(self) -> str:
        return "messages" if self.name == "gigwire" else "peer_messages"

    @property
    def sequences(self) -> str:
        return "chat_sequences" if self.name == "gigwire" else "peer_sequences"

    def _command(self, port: int) -> tuple[list[str], dict[str, str]]:
        env = {**os.environ, "REDIS_URL": REDIS_URL, "JWT_SECRET": self.secret}
        if self.name == "peer":
            env |= {"PEER_DSN": self.dsn, "PEER_CHANNEL": f"chatmix-peer-{self.tag}"}
            return [sys.executable, "-m", "bench.chatmix.peer", "--port", str(port)], env
        env |= {
            "GIGWIRE_ENV": "dev",
            "DATABASE_URL": self.dsn,
            "REDIS_PREFIX": f"chatmix:{self.tag}:",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "RUN_WORKERS": "false",
            "LOG_LEVEL": "WARNING",
            # The per-connection chat rate limit (10/s, burst 20) must never bite in the ramp.
            "CHAT_RATE_PER_S": "1000000",
            "CHAT_BURST": "1000000",
            "WS_QUEUE_MAX_FRAMES": "100000",
            "WS_QUEUE_MAX_BYTES": str(64 * 1024 * 1024),
        }
        return [sys.executable, "-m", "hub"], env

    async def start(self) -> None:
        for port in self.ports:
            cmd, env = self._command(port)
            # Its log (shutdown with messages still queued is noisy) goes to a file, not the table's output.
            with open(f"/tmp/chatmix-{self.name}-{self.tag}-{port}.log", "wb") as log:  # noqa: ASYNC230
                proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)  # noqa: ASYNC220
            self.procs.append(proc)
        path = "/readyz" if self.name == "gigwire" else "/healthz"
        for port, proc in zip(self.ports, self.procs, strict=True):
            await wait_ready(port, path, proc)

    def close(self) -> None:
        stop(self.procs)
        self.procs = []

    def rss_kb(self) -> int:
        return sum(rss_kb(p.pid) for p in self.procs)

    def cpu_ticks(self) -> int:
        return sum(cpu_ticks(p.pid) for p in self.procs)


def postgres_ticks(database: str) -> tuple[dict[int, int], dict[int, int]]:
    """CPU ticks so far of every `postgres` process, and of those serving `database` (its backends
    and autovacuum workers, by their process title): {pid: ticks} each."""
    every: dict[int, int] = {}
    ours: dict[int, int] = {}
    marker = f" {database} "
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if Path(entry.path, "comm").read_text().strip() != "postgres":
                continue
            ticks = cpu_ticks(int(entry.name))
            title = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile
        every[int(entry.name)] = ticks
        if marker in title + " ":
            ours[int(entry.name)] = ticks
    return every, ours


def ticks_delta(before: dict[int, int], after: dict[int, int]) -> int:
    """CPU used between two snapshots by the processes alive at the second (those that exited in
    between are not counted; a process born in between counts whole)."""
    return sum(t - before.get(pid, 0) for pid, t in after.items())


@dataclass
class Snapshot:
    """What is read at the edges of a measured window."""

    at_ns: int
    stored: int
    server_ticks: int
    pg_every: dict[int, int]
    pg_ours: dict[int, int]
    wal_lsn: str


async def snapshot(db: asyncpg.Connection, servers: Servers, database: str, now_ns: int) -> Snapshot:
    stored = await db.fetchval(f"SELECT count(*) FROM {servers.table}")
    wal = await db.fetchval("SELECT pg_current_wal_lsn()::text")
    every, ours = postgres_ticks(database)
    return Snapshot(now_ns, stored, servers.cpu_ticks(), every, ours, wal)


async def integrity(db: asyncpg.Connection, servers: Servers) -> dict[str, int]:
    """Per-order seq checks over the whole table: orders whose seqs are not exactly 1..n (a gap or
    a duplicate), orders whose counter is not the last seq, and duplicate clientMsgIds."""
    row = await db.fetchrow(
        f"""
        WITH per AS (
            SELECT order_id, count(*) AS n, count(DISTINCT seq) AS d, min(seq) AS lo, max(seq) AS hi,
                   count(DISTINCT (sender_id, client_msg_id)) AS ids
            FROM {servers.table} GROUP BY order_id
        )
        SELECT count(*) FILTER (WHERE n <> d OR lo <> 1 OR hi <> n) AS bad_seq_orders,
               coalesce(sum(n - ids), 0)::bigint AS duplicate_client_ids,
               (SELECT count(*) FROM {servers.sequences} s LEFT JOIN per USING (order_id)
                WHERE s.last_seq <> coalesce(per.hi, 0)) AS counter_mismatch,
               count(*) AS orders
        FROM per
        """
    )
    assert row is not None
    return dict(row)


async def make_pairs(db: asyncpg.Connection, n: int, secret: str) -> list[list[str]]:
    """`n` pairs of users, each with an in-progress order (a gig and an accepted application):
    [order_id, client_token, client_id, doer_token, doer_id] each."""
    codec = TokenCodec(Settings(jwt_secret=secret))
    async with db.transaction():
        users = await db.fetch(
            "INSERT INTO users (phone, name) SELECT '+9170' || lpad(g::text, 8, '0'), 'Bench'"
            " FROM generate_series(1, $1) g RETURNING id::text",
            2 * n,
        )
        ids = [r[0] for r in users]
        clients, doers = ids[:n], ids[n:]
        gigs = await db.fetch(
            "INSERT INTO gigs (client_id, title, description, category, budget_min, budget_max, deadline,"
            " status) SELECT c, 'Bench gig', 'x', 'design', 100000, 100000, now() + interval '7 days',"
            " 'in_progress' FROM unnest($1::uuid[]) WITH ORDINALITY AS t(c, i) ORDER BY i RETURNING id::text",
            clients,
        )
        gig_ids = [r[0] for r in gigs]
        apps = await db.fetch(
            "INSERT INTO applications (gig_id, doer_id, proposal, bid_amount, status)"
            " SELECT g, d, 'ok', 100000, 'accepted' FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY"
            " AS t(g, d, i) ORDER BY i RETURNING id::text, gig_id::text",
            gig_ids,
            doers,
        )
        app_of = {gig: app for app, gig in apps}
        orders = await db.fetch(
            "INSERT INTO orders (gig_id, application_id, client_id, doer_id, amount, platform_fee,"
            " doer_payout, status, escrow_state) SELECT g, a, c, d, 100000, 10000, 90000, 'in_progress',"
            " 'funded' FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[]) AS t(g, a, c, d)"
            " RETURNING id::text, client_id::text, doer_id::text",
            gig_ids,
            [app_of[g] for g in gig_ids],
            clients,
            doers,
        )
    return [
        [o, codec.issue(c, ("client", "doer")), c, codec.issue(d, ("client", "doer")), d]
        for o, c, d in orders
    ]


def stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum of the load generators' drain replies (latency lists concatenated)."""
    out: dict[str, Any] = {}
    for row in rows:
        for key, value in row.items():
            out[key] = out.get(key, [] if isinstance(value, list) else 0) + value
    return out
