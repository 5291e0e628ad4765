"""Gig search latency over 100,000 gigs, through the real HTTP endpoint GET /api/gigs.

Creates a scratch database on PostgreSQL at 127.0.0.1:5432 (or BENCH_ADMIN_DSN), migrates it, inserts
the gigs with one INSERT ... SELECT generate_series, serves the whole app on a loopback port, times
each scenario's requests with one aiohttp client (sequential: latency, not throughput): GET /healthz
first (the harness's floor), the page scenarios, then keyset pages reached by following nextCursor.
Prints p50/p99, `total` and whether it is an estimate per scenario, the load average, and the
EXPLAIN (ANALYZE, BUFFERS) of every scenario's statement, then drops the database (not one given
with --dsn).

    .venv/bin/python -m bench.gig_search [--gigs 100000] [--requests 200] [--dsn DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from hub.__main__ import compose_app
from hub.db import migrate_dsn
from hub.settings import Settings
from rest.gig_cursor import CursorCodec
from rest.gig_query import search_gigs
from rest.gig_search import parse_query
from tests.services import _with_database, free_port

SECRET = "bench-" + "x" * 40
ADMIN_DSN = os.environ.get("BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")

# Words the generated titles, descriptions and skills are made of (index arithmetic spreads them).
_VERBS = ["Design", "Build", "Write", "Edit", "Translate", "Record", "Tutor", "Research", "Market", "Fix"]
_THINGS = [
    "a logo", "a website", "an essay", "a reel", "a podcast", "a poster", "an app", "a dataset",
    "a brochure", "a landing page", "a pitch deck", "a thesis chapter", "a jingle", "a survey",
]  # fmt: skip
_FOR = ["a startup", "a college fest", "a cafe", "a hackathon team", "a club", "a research lab", "a shop"]
_SKILLS = [
    "photoshop", "illustrator", "figma", "react", "python", "django", "excel", "premiere", "english",
    "hindi", "seo", "copywriting", "statistics", "flutter", "blender", "audacity", "canva", "sql",
]  # fmt: skip
_CATEGORIES = ["design", "development", "writing", "marketing", "video", "music", "tutoring", "research"]

_FILL = """
INSERT INTO gigs (client_id, title, description, category, skills, budget_min, budget_max, deadline,
                  status, created_at, boosted_until, applications_count)
SELECT u.ids[1 + i % cardinality(u.ids)],
       ($1::text[])[1 + i % 10] || ' ' || ($2::text[])[1 + (i / 10) % 14]
         || ' for ' || ($3::text[])[1 + (i / 7) % 7],
       'Need help with ' || lower(($2::text[])[1 + (i / 3) % 14]) || '. Work ' || (i % 97) ||
         ' involves ' || ($4::text[])[1 + i % 18] || ' and ' || ($4::text[])[1 + (i / 5) % 18] || '.',
       ($5::text[])[1 + (i / 11) % 8],
       ARRAY[($4::text[])[1 + i % 18], ($4::text[])[1 + (i / 18) % 18]],
       10000 + (i % 50) * 1000,
       10000 + (i % 50) * 1000 + (i % 13) * 5000,
       now() + make_interval(hours => 1 + i % 2000),
       CASE WHEN i % 10 < 8 THEN 'open' WHEN i % 10 = 8 THEN 'closed' ELSE 'completed' END,
       now() - make_interval(mins => i),
       CASE WHEN i % 200 = 0 THEN now() + interval '1 day' END,
       i % 17
  FROM generate_series(1, $6::int) AS i, (SELECT array_agg(id) AS ids FROM users) AS u
"""

SCENARIOS: list[tuple[str, dict[str, str]]] = [
    ("default list (open, newest)", {}),
    ("category + budget", {"category": "design", "budgetMin": "30000", "budgetMax": "60000"}),
    ("skills (any of two)", {"skills": "figma,blender"}),
    ("deadline this_week", {"deadline": "this_week"}),
    ("search 'logo startup' (relevance)", {"search": "logo startup"}),
    (
        "search + category + sort budgetMax",
        {"search": "website", "category": "development", "sortBy": "budgetMax"},
    ),
    ("search rare phrase", {"search": '"pitch deck" hackathon'}),
    ("deep page (page 200)", {"page": "200"}),
]
# Keyset pages: (name, params, pages walked by nextCursor before the timed page).
CURSOR_SCENARIOS: list[tuple[str, dict[str, str], int]] = [
    ("cursor: default list, page 200", {}, 199),
    ("cursor: category + budget, page 50",
     {"category": "design", "budgetMin": "30000", "budgetMax": "60000"}, 49),
    ("cursor: sort budgetMax asc, page 20",
     {"sortBy": "budgetMax", "sortOrder": "asc", "skills": "figma"}, 19),
    ("cursor: search relevance, page 40", {"search": "logo startup"}, 39),
]  # fmt: skip


def pct(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) of samples, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def setup_database(dsn: str, gigs: int) -> None:
    """Migrate and fill the scratch database: 1,000 users and `gigs` gigs, then ANALYZE."""
    await migrate_dsn(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO users (phone)"
            " SELECT '+9190000' || lpad(i::text, 5, '0') FROM generate_series(1, 1000) i"
        )
        started = time.perf_counter()
        await conn.execute(_FILL, _VERBS, _THINGS, _FOR, _SKILLS, _CATEGORIES, gigs)
        await conn.execute("VACUUM ANALYZE gigs")  # as autovacuum leaves a settled table
        print(f"inserted {gigs} gigs in {time.perf_counter() - started:.1f} s")
    finally:
        await conn.close()


async def explain(dsn: str, params: dict[str, str]) -> None:
    """Print the plan of the statement the endpoint runs for `params` (its second run: the first
    warms the caches as the timed requests did)."""
    captured: list[tuple[str, tuple[Any, ...]]] = []

    class Spy:
        async def fetchval(self, sql: str, *args: Any) -> int:
            captured.append((sql, args))
            return 0

        async def fetch(self, sql: str, *args: Any) -> list[Any]:
            captured.append((sql, args))
            return []

    from multidict import MultiDict

    await search_gigs(Spy(), parse_query(MultiDict(params)), CursorCodec(SECRET))  # type: ignore[arg-type]
    conn = await asyncpg.connect(dsn)
    try:
        for sql, args in captured:
            await conn.fetch(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}", *args)
            plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", *args)
            shown = {k: (v[:12] + "...") if k == "cursor" else v for k, v in params.items()}
            print(f"\nEXPLAIN ANALYZE {sql.split(' FROM ')[0][:40]} ... for {shown}")
            for row in plan:
                print("   ", row[0])
    finally:
        await conn.close()


async def walk(session: aiohttp.ClientSession, url: str, params: dict[str, str], pages: int) -> str:
    """The nextCursor after `pages` pages of `params`, followed one by one."""
    cursor = ""
    for _ in range(pages):
        async with session.get(url, params={**params, **({"cursor": cursor} if cursor else {})}) as resp:
            body = await resp.json()
        assert resp.status == 200 and body["nextCursor"], body
        cursor = body["nextCursor"]
    return cursor


async def floor(session: aiohttp.ClientSession, url: str, requests: int) -> None:
    """The harness's own latency: GET /healthz (no database) through the same client and server."""
    samples: list[float] = []
    for i in range(requests + 10):
        started = time.perf_counter()
        async with session.get(url) as resp:
            await resp.read()
        if i >= 10:
            samples.append((time.perf_counter() - started) * 1000)
    name = "floor: GET /healthz (no database)"
    print(
        f"{name:40} {'':>7} {'':>5} {statistics.median(samples):8.2f} {pct(samples, 0.99):8.2f}", flush=True
    )


async def timed(
    session: aiohttp.ClientSession, url: str, name: str, params: dict[str, str], requests: int
) -> None:
    """Print `params`' total, estimate flag, p50 and p99 over `requests` sequential requests."""
    samples: list[float] = []
    body: dict[str, Any] = {}
    for i in range(requests + 10):
        started = time.perf_counter()
        async with session.get(url, params=params) as resp:
            body = await resp.json()
        elapsed = (time.perf_counter() - started) * 1000
        assert resp.status == 200 and len(body["data"]) == 20, body
        if i >= 10:  # the first ten warm the pool and the caches
            samples.append(elapsed)
    flag = "est" if body["totalIsEstimate"] else "exact"
    print(
        f"{name:40} {body['total']:>7} {flag:>5} {statistics.median(samples):8.2f} {pct(samples, 0.99):8.2f}",
        flush=True,
    )


async def run(gigs: int, requests: int, dsn: str | None) -> None:
    database = f"gigwire_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    if dsn is None:
        await admin.execute(f'CREATE DATABASE "{database}"')
    runner: web.AppRunner | None = None
    try:
        if dsn is None:
            dsn = _with_database(ADMIN_DSN, database)
            await setup_database(dsn, gigs)
        settings = Settings(
            database_url=dsn,
            jwt_secret=SECRET,
            data_dir=Path("/tmp"),
            run_workers=False,
            api_rate_per_ip=10**7,
            api_rate_per_user=10**7,
        )
        runner = web.AppRunner(compose_app(settings, dsn), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        url = f"http://127.0.0.1:{port}/api/gigs"
        print(f"load average {os.getloadavg()}")
        print(f"\n{'scenario':40} {'total':>7} {'total':>5} {'p50 ms':>8} {'p99 ms':>8}")
        explained = [params for _, params in SCENARIOS]
        async with aiohttp.ClientSession() as session:
            await floor(session, f"http://127.0.0.1:{port}/healthz", requests)
            for name, params in SCENARIOS:
                await timed(session, url, name, params, requests)
            for name, params, pages in CURSOR_SCENARIOS:
                with_cursor = {**params, "cursor": await walk(session, url, params, pages)}
                await timed(session, url, name, with_cursor, requests)
                explained.append(with_cursor)
        print(f"load average {os.getloadavg()}")
        for params in explained:
            await explain(dsn, params)
    finally:
        if runner is not None:
            await runner.cleanup()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gigs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per scenario")
    parser.add_argument("--dsn", help="an already filled and migrated database to use (kept)")
    args = parser.parse_args()
    asyncio.run(run(args.gigs, args.requests, args.dsn))


if __name__ == "__main__":
    main()
