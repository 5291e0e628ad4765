"""Where a gigwire connection's memory goes: one web app in this process under tracemalloc, N idle
connections (authenticated, subscribed to one order's chat) from a load-generator process, and the
Python heap growth per connection grouped by source file and by line.

    .venv/bin/python -m bench.compare.memory 2000 > bench/compare/profiles/gigwire-memory.txt

Needs PostgreSQL on 127.0.0.1:5432 (a scratch database, dropped after) and Redis on 127.0.0.1:6379
(a unique prefix). tracemalloc slows the process and adds its own overhead to RSS: read the traced
bytes, not the RSS line."""

from __future__ import annotations

import asyncio
import gc
import os
import secrets
import sys
import tracemalloc
import uuid
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from bench.compare.run import ADMIN_DSN
from bench.compare.systems import REDIS_URL, ROOT, rss_kb
from hub.__main__ import compose_app
from hub.db import create_pool, migrate_dsn
from hub.door import Runner
from hub.settings import Settings
from tests.factories import make_order, make_user
from tests.services import free_port


def _short(filename: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


async def main(n: int) -> None:
    admin = await asyncpg.connect(ADMIN_DSN)
    database = f"gigwire_mem_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{database}"')
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + database
    try:
        await migrate_dsn(dsn)
        settings = Settings(
            env="dev",
            database_url=dsn,
            redis_url=REDIS_URL,
            redis_prefix=f"gwmem:{database}:",
            jwt_secret=secrets.token_urlsafe(48),
            run_workers=False,
            log_level="WARNING",
        )
        pool = await create_pool(dsn, 1, 2)
        client, doer = await make_user(pool, settings), await make_user(pool, settings)
        order = await make_order(pool, client, doer)
        await pool.close()
        runner = Runner(compose_app(settings, dsn), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        gen = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.compare.loadgen",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert gen.stdin is not None and gen.stdout is not None

        async def call(cmd: dict[str, Any]) -> dict[str, Any]:
            assert gen.stdin is not None and gen.stdout is not None
            gen.stdin.write(orjson.dumps(cmd) + b"\n")
            await gen.stdin.drain()
            reply: dict[str, Any] = orjson.loads(await asyncio.wait_for(gen.stdout.readline(), 300))
            return reply

        await asyncio.sleep(1.0)
        gc.collect()
        tracemalloc.start(4)
        before, rss_before = tracemalloc.take_snapshot(), rss_kb(os.getpid())
        cmd = {"cmd": "connect", "count": n, "system": "gigwire", "ports": [port], "order": order}
        cmd |= {"tokens": [client.token, doer.token], "local_addrs": ["127.0.0.2", "127.0.0.3"]}
        cmd |= {"concurrency": 32, "timeout": 250}
        print(await call(cmd))
        await asyncio.sleep(2.0)
        gc.collect()
        after, rss_after = tracemalloc.take_snapshot(), rss_kb(os.getpid())
        stats = after.compare_to(before, "lineno")
        traced = sum(s.size_diff for s in stats)
        print(f"{n} idle connections; RSS delta {(rss_after - rss_before) / n:.1f} KiB/connection")
        print(f"(tracemalloc's own overhead included); Python heap traced: {traced / n:,.0f} B/connection\n")
        by_file: dict[str, int] = {}
        for stat in stats:
            name = _short(stat.traceback[0].filename)
            by_file[name] = by_file.get(name, 0) + stat.size_diff
        print("bytes/connection  file")
        for name, size in sorted(by_file.items(), key=lambda item: -item[1])[:25]:
            print(f"{size / n:16,.0f}  {name}")
        print("\nbytes/connection  objects/connection  line")
        for stat in stats[:40]:
            frame = stat.traceback[0]
            where = f"{_short(frame.filename)}:{frame.lineno}"
            print(f"{stat.size_diff / n:16,.0f}  {stat.count_diff / n:18.1f}  {where}")
        gen.stdin.write(b'{"cmd": "quit"}\n')
        await asyncio.wait_for(gen.wait(), 60)
        await runner.cleanup()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
