"""Push throughput through the real firebase-admin SDK to a local FCM v1 server.

Three figures: the sender alone (workers.fcm.FcmSender.send, batches of 500 through
messaging.send_each_async), the same sends through bare httpx (the floor under the SDK), and the
whole push worker (push_jobs claimed from PostgreSQL, devices looked up, sent, jobs deleted). Each
is pushes per second of wall time and this process's CPU time per push. The fake FCM server
(tests/workers/fake_fcm.py: the v1 API over HTTP/2 + TLS, as fcm.googleapis.com) runs in its own
process so it does not share the sender's event loop; this process trusts its CA. At the end the
server says how the sends arrived (HTTP version, TLS connections) and its CPU per request. The
worker figure needs PostgreSQL at 127.0.0.1:5432 (or BENCH_ADMIN_DSN): a scratch database is
created, migrated and dropped.

    .venv/bin/python -m bench.push [--messages 5000] [--jobs 2000] [--concurrency 500]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from hub.db import create_pool, migrate_dsn
from tests.services import _with_database
from tests.workers.fake_fcm import PROJECT, TRUST_VARIABLES
from workers.fcm import CONCURRENCY, FcmSender, PushMessage
from workers.metrics import WorkerMetrics
from workers.push import PushWorker

ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _serve_fcm(directory: str, pipe: Any) -> None:
    from tests.workers.fake_fcm import FakeFcm

    async def main() -> None:
        fcm = FakeFcm()
        await fcm.start()
        assert fcm.certificates is not None
        pipe.send((fcm.credentials_file(Path(directory)), fcm.url, fcm.certificates.ca_file))
        cpu = time.process_time()
        await asyncio.to_thread(pipe.recv)  # the benchmark asks how the sends arrived
        per_request_ms = 1000 * (time.process_time() - cpu) / max(1, len(fcm.send_requests))
        versions = dict(Counter(v for v, _ in fcm.send_requests))
        pipe.send((versions, fcm.connections, fcm.refused, per_request_ms))
        await fcm.close()

    asyncio.run(main())


@dataclass
class Rate:
    """Pushes per second of wall time, and this process's CPU time per push (the figure a busy
    shared machine disturbs least: 1000 / cpu_ms is the rate one free core would reach)."""

    count: int
    wall_s: float
    cpu_s: float

    def __str__(self) -> str:
        cpu_ms = 1000 * self.cpu_s / self.count
        return (
            f"{self.count / self.wall_s:,.0f}/s wall, {cpu_ms:.3f} ms CPU each"
            f" (= {1000 / cpu_ms:,.0f}/s per CPU-second)"
        )


async def _sender_rate(sender: FcmSender, n: int) -> Rate:
    messages = [
        PushMessage(token=f"bench-{i}", platform="android", title="Bench", body="A push", data={"i": str(i)})
        for i in range(n)
    ]
    await sender.send(messages[:50])  # warm-up: OAuth token, connections
    started, cpu = time.perf_counter(), time.process_time()
    results = await sender.send(messages)
    rate = Rate(n, time.perf_counter() - started, time.process_time() - cpu)
    assert all(r.status == "sent" for r in results), {r.reason for r in results if r.status != "sent"}
    return rate


async def _httpx_rate(credentials_file: str, url: str, n: int) -> Rate:
    """The floor under the sender: the same sends with bare httpx (HTTP/2, one client, the body the
    SDK would encode, 500 gathered at a time), no firebase-admin and no gigwire."""
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    scopes = ["https://www.googleapis.com/auth/firebase.messaging"]
    credential = service_account.Credentials.from_service_account_file(credentials_file, scopes=scopes)
    await asyncio.to_thread(credential.refresh, Request())
    send_url = f"{url}/v1/projects/{PROJECT}/messages:send"

    async def one(client: httpx.AsyncClient, i: int) -> int:
        message = {
            "token": f"bare-{i}",
            "notification": {"title": "Bench", "body": "A push"},
            "data": {"i": str(i)},
            "android": {"priority": "high"},
            "apns": {"headers": {"apns-priority": "10"}},
            "webpush": {"headers": {"Urgency": "high"}},
        }
        response = await client.post(send_url, json={"message": message})
        return response.status_code

    headers = {"authorization": f"Bearer {credential.token}"}
    async with httpx.AsyncClient(http2=True, headers=headers, timeout=30) as client:
        await asyncio.gather(*(one(client, i) for i in range(50)))  # warm-up: the connection
        started, cpu = time.perf_counter(), time.process_time()
        codes: set[int] = set()
        for start in range(0, n, CONCURRENCY):
            codes.update(
                await asyncio.gather(*(one(client, i) for i in range(start, min(n, start + CONCURRENCY))))
            )
        rate = Rate(n, time.perf_counter() - started, time.process_time() - cpu)
    assert codes == {200}, codes
    return rate


async def _worker_rate(sender: FcmSender, jobs: int) -> Rate | None:
    database = f"gigwire_bench_push_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(ADMIN_DSN)
    except OSError:
        print("no PostgreSQL at BENCH_ADMIN_DSN: skipping the worker figure")
        return None
    await admin.execute(f'CREATE DATABASE "{database}"')
    dsn = _with_database(ADMIN_DSN, database)
    try:
        await migrate_dsn(dsn)
        pool = await create_pool(dsn, min_size=2, max_size=4)
        try:
            users = [
                await pool.fetchval("INSERT INTO users (phone) VALUES ($1) RETURNING id", f"+9191{i:08d}")
                for i in range(100)
            ]
            await pool.executemany(
                "INSERT INTO devices (token, user_id, platform) VALUES ($1, $2, 'android')",
                [(f"dev-{i}", u) for i, u in enumerate(users)],
            )
            await pool.executemany(
                "INSERT INTO push_jobs (user_id, type, title, body, data)"
                " VALUES ($1, 'system', 'Bench', 'b', '{}')",
                [(users[i % len(users)],) for i in range(jobs)],
            )
            worker = PushWorker(pool, sender, WorkerMetrics())
            started, cpu = time.perf_counter(), time.process_time()
            while await worker.run_once():
                pass
            rate = Rate(jobs, time.perf_counter() - started, time.process_time() - cpu)
            assert await pool.fetchval("SELECT count(*) FROM push_jobs") == 0
            return rate
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="messages in flight at once")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="gigwire-bench-push-")
    pipe, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve_fcm, args=(directory, child), daemon=True)
    server.start()
    try:
        credentials, url, ca_file = pipe.recv()
        for name in TRUST_VARIABLES:  # trust the fake's CA, as its own process does
            os.environ[name] = ca_file
        sender = FcmSender(credentials, endpoint=url, concurrency=args.concurrency)
        try:
            rate = await _sender_rate(sender, args.messages)
            print(f"sender: {args.messages} messages through firebase-admin: {rate}")
            bare = await _httpx_rate(credentials, url, args.messages)
            print(f"bare httpx (no SDK, no gigwire): {args.messages} requests: {bare}")
            worker = await _worker_rate(sender, args.jobs)
            if worker is not None:
                print(f"push worker: {args.jobs} jobs (one device each), end to end: {worker}")
        finally:
            await sender.close()
        pipe.send("stats")
        versions, connections, refused, server_ms = pipe.recv()
        print(
            f"FCM received: {versions} over {connections} TLS connection(s); {refused} refused (no h2);"
            f" the fake server spent {server_ms:.3f} ms CPU per request"
        )
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    asyncio.run(main())
