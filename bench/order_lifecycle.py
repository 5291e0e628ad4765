"""Order lifecycle throughput: open -> create-order -> checkout -> verify -> submit -> approve (escrow
released), through the real HTTP endpoints with the sandbox gateway.

Creates a scratch database on PostgreSQL at 127.0.0.1:5432 (or BENCH_ADMIN_DSN), migrates it, makes
`--users` users with access tokens, serves the whole app on a loopback port, and runs `--concurrency`
workers that each drive whole lifecycles between random client/doer pairs until `--orders` are done.
Orders are opened with domain.orders.open_order (what accepting an application calls); every other step
is an HTTP request. Prints lifecycles/s, per-step p50/p99, and the ledger audit, then drops the database.

    .venv/bin/python -m bench.order_lifecycle [--orders 400] [--concurrency 16] [--users 40]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import statistics
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from domain.ledger import audit
from domain.orders import open_order
from hub.__main__ import compose_app
from hub.db import create_pool, migrate_dsn
from hub.door import Runner
from hub.settings import Settings
from hub.tokens import TokenCodec
from tests.services import _with_database, free_port

ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
STEPS = ("open", "create-order", "checkout", "verify", "submit", "approve")


async def _users(pool: asyncpg.Pool, settings: Settings, n: int) -> list[tuple[str, dict[str, str]]]:
    codec = TokenCodec(settings)
    out = []
    for i in range(n):
        uid = await pool.fetchval(
            # A verified phone: paying for an order needs one (rest/account_rules.py).
            "INSERT INTO users (phone, name, phone_verified) VALUES ($1, 'Bench', true) RETURNING id::text",
            f"+9190000{i:05d}",
        )
        out.append((uid, {"Authorization": f"Bearer {codec.issue(uid, ('doer', 'client'))}"}))
    return out


async def _open(pool: asyncpg.Pool, client: str, doer: str, amount: int) -> str:
    async with pool.acquire() as conn, conn.transaction():
        gig = await conn.fetchval(
            "INSERT INTO gigs (client_id, title, description, category, budget_min, budget_max, deadline,"
            " status) VALUES ($1, 'Bench gig', 'x', 'design', $2, $2, now() + interval '1 day',"
            " 'in_progress')"
            " RETURNING id::text",
            client,
            amount,
        )
        app = await conn.fetchval(
            "INSERT INTO applications (gig_id, doer_id, proposal, bid_amount, status)"
            " VALUES ($1, $2, 'ok', $3, 'accepted') RETURNING id::text",
            gig,
            doer,
            amount,
        )
        order = await open_order(
            conn, gig_id=gig, application_id=app, client_id=client, doer_id=doer, amount=amount,
            currency="INR", actor_id=client, fee_bps=1000,
        )  # fmt: skip
    return order.id


async def _lifecycle(
    http: aiohttp.ClientSession,
    base: str,
    pool: asyncpg.Pool,
    users: list[Any],
    timings: dict[str, list[float]],
) -> None:
    (client, ch), (doer, dh) = random.sample(users, 2)

    async def post(step: str, path: str, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        async with http.post(
            base + path, json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex}
        ) as r:
            data: dict[str, Any] = await r.json()
            if r.status not in (200, 201):
                raise RuntimeError(f"{step}: {r.status} {data}")
        timings[step].append(time.perf_counter() - started)
        return data["data"]  # type: ignore[no-any-return]

    started = time.perf_counter()
    order_id = await _open(pool, client, doer, random.randint(10_000, 500_000))
    timings["open"].append(time.perf_counter() - started)
    created = await post("create-order", "/api/payments/create-order", ch, {"orderId": order_id})
    paid = await post(
        "checkout", "/api/dev/sandbox/checkout", ch, {"gatewayOrderId": created["gatewayOrderId"]}
    )
    await post("verify", "/api/payments/verify", ch, paid)
    await post(
        "submit", f"/api/orders/{order_id}/submit", dh, {"deliverables": [{"url": "https://f.example/x"}]}
    )
    done = await post("approve", f"/api/orders/{order_id}/approve", ch, {})
    assert done["escrowState"] == "released"


async def main(orders: int, concurrency: int, n_users: int) -> None:
    logging.disable(logging.INFO)  # the per-request log lines would swamp the figures
    database = f"gigwire_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    dsn = _with_database(ADMIN_DSN, database)
    runner: Runner | None = None
    try:
        await migrate_dsn(dsn)
        port = free_port()
        settings = Settings(
            env="dev", database_url=dsn, jwt_secret="bench-" + "x" * 40, data_dir=Path("/tmp"),
            run_workers=False, api_rate_per_ip=10**7, api_rate_per_user=10**7,
            razorpay_key_secret="bench-key-secret", razorpay_webhook_secret="bench-webhook-secret",
        )  # fmt: skip
        runner = Runner(compose_app(settings, dsn), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        pool = await create_pool(dsn, min_size=2, max_size=concurrency + 2)
        users = await _users(pool, settings, n_users)
        timings: dict[str, list[float]] = defaultdict(list)
        remaining = [orders]

        async def worker(http: aiohttp.ClientSession) -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                await _lifecycle(http, f"http://127.0.0.1:{port}", pool, users, timings)

        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as http:
            started = time.perf_counter()
            await asyncio.gather(*(worker(http) for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
        print(f"{orders} order lifecycles (open -> released), {concurrency} concurrent, {n_users} users")
        print(f"  {elapsed:.2f} s, {orders / elapsed:.1f} lifecycles/s ({6 * orders / elapsed:.0f} steps/s)")
        for step in STEPS:
            values = sorted(timings[step])
            p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
            print(f"  {step:13s} p50 {statistics.median(values) * 1000:6.1f} ms   p99 {p99 * 1000:6.1f} ms")
        problems = await audit(pool)
        transfers = await pool.fetchval("SELECT count(*) FROM ledger_transfers")
        print(f"  ledger: {transfers} transfers, audit {problems or 'clean'}")
        await pool.close()
    finally:
        if runner is not None:
            await runner.cleanup()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--users", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(main(args.orders, args.concurrency, args.users))
