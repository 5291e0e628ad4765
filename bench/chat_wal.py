"""WAL written per stored chat message, attributed by record type.

Stores MESSAGES chat messages through hub.chat.store_batch (the statement the hub's group commit
runs) in batches of BATCH spread over PAIRS orders, four batches in flight, while a drain task
empties the push tables as a push sender whose recipients all watch live would. Prints the WAL
bytes per message (pg_current_wal_lsn difference) and, when PGWAL names the server's pg_wal
directory, `pg_waldump --stats=record` over the same range.

Run it against a PostgreSQL of its own (other databases' WAL would count too):

    .venv/bin/python -m bench.chat_wal --dsn postgresql://postgres@127.0.0.1:55432/postgres \
        --pairs 2500 --messages 30000 --batch 100 [--checkpoint]

`--checkpoint` starts with a CHECKPOINT, so every page's first change writes a full-page image: the
worst case, right after a checkpoint. Without it, the figure is the steady state between two."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import uuid

import asyncpg

from hub.chat import Outgoing, store_batch
from hub.db import create_pool, migrate

_DB = "gigwire_bench_chat_wal"


async def _orders(pool: asyncpg.Pool, pairs: int) -> list[tuple[str, str, str]]:
    """`pairs` orders between fresh users, made by SQL."""
    async with pool.acquire() as c, c.transaction():
        for _ in range(pairs):
            a, b = [
                await c.fetchval(
                    "INSERT INTO users (phone, roles) VALUES ($1, $2) RETURNING id::text",
                    f"+919{random.randrange(10**9):09d}",
                    [role],
                )
                for role in ("client", "doer")
            ]
            gig = await c.fetchval(
                "INSERT INTO gigs (client_id, title, description, category, skills, budget_min, budget_max,"
                " deadline, status) VALUES ($1, 'Logo design', 'A logo', 'design', '{x}', 100, 100,"
                " now() + interval '7 days', 'in_progress') RETURNING id::text",
                a,
            )
            app = await c.fetchval(
                "INSERT INTO applications (gig_id, doer_id, proposal, bid_amount, status)"
                " VALUES ($1, $2, 'I can', 100, 'accepted') RETURNING id::text",
                gig,
                b,
            )
            await c.execute(
                "INSERT INTO orders (gig_id, application_id, client_id, doer_id, amount, platform_fee,"
                " doer_payout, status, escrow_state) VALUES ($1, $2, $3, $4, 100, 10, 90, 'in_progress',"
                " 'funded')",
                gig,
                app,
                a,
                b,
            )
        rows = await c.fetch("SELECT id::text, client_id::text, doer_id::text FROM orders")
    return [(r[0], r[1], r[2]) for r in rows]


async def _drain(pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    """What a push sender does when every recipient watches live: delete, queue nothing."""
    has_pending = await pool.fetchval("SELECT to_regclass('chat_push_pending') IS NOT NULL")
    while not stop.is_set():
        await asyncio.sleep(0.05)
        await pool.execute(
            "DELETE FROM push_jobs WHERE id IN (SELECT id FROM push_jobs LIMIT 500 FOR UPDATE SKIP LOCKED)"
        )
        if has_pending:
            await pool.execute(
                "DELETE FROM chat_push_pending WHERE ctid IN"
                " (SELECT ctid FROM chat_push_pending LIMIT 500 FOR UPDATE SKIP LOCKED)"
            )


async def main(args: argparse.Namespace) -> None:
    admin = await asyncpg.connect(args.dsn)
    await admin.execute(f"DROP DATABASE IF EXISTS {_DB}")
    await admin.execute(f"CREATE DATABASE {_DB}")
    dsn = args.dsn.rsplit("/", 1)[0] + f"/{_DB}"
    pool = await create_pool(dsn, min_size=5, max_size=5)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        orders = await _orders(pool, args.pairs)
        if args.checkpoint:
            await pool.execute("CHECKPOINT")
        start = await pool.fetchval("SELECT pg_current_wal_lsn()::text")
        gate = asyncio.Semaphore(4)

        async def one(batch: list[Outgoing]) -> None:
            async with gate:
                await store_batch(pool, batch)

        batches = []
        for _ in range(0, args.messages, args.batch):
            picks = [random.choice(orders) for _ in range(args.batch)]
            text = "a typical short chat message, about forty"
            batches.append(
                [
                    Outgoing(o, s, text, [], str(uuid.uuid4()), c if s == d else d)
                    for o, c, d in picks
                    for s in [random.choice((c, d))]
                ]
            )
        stop = asyncio.Event()
        drain = asyncio.create_task(_drain(pool, stop))
        await asyncio.gather(*(one(b) for b in batches))
        stop.set()
        await drain
        end = await pool.fetchval("SELECT pg_current_wal_lsn()::text")
        wal = await pool.fetchval("SELECT pg_wal_lsn_diff($1::text::pg_lsn, $2::text::pg_lsn)", end, start)
        print(
            f"pairs {args.pairs}, messages {args.messages}, batch {args.batch}, checkpoint {args.checkpoint}:"
            f" WAL {float(wal) / args.messages:,.0f} B/msg"
        )
        waldump = shutil.which("pg_waldump") or "/usr/lib/postgresql/15/bin/pg_waldump"
        if os.environ.get("PGWAL"):
            out = subprocess.run(  # noqa: ASYNC221 (the measurement is over)
                [waldump, "-p", os.environ["PGWAL"], "-s", start, "-e", end, "--stats=record"],
                capture_output=True,
                text=True,
                check=False,
            )
            print("\n".join(line for line in out.stdout.splitlines() if " 0 (  0.00)" not in line))
    finally:
        await pool.close()
        await admin.execute(f"DROP DATABASE IF EXISTS {_DB}")
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", required=True, help="a PostgreSQL of the benchmark's own")
    parser.add_argument("--pairs", type=int, default=2500)
    parser.add_argument("--messages", type=int, default=30000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--checkpoint", action="store_true")
    asyncio.run(main(parser.parse_args()))
