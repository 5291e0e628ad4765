"""The TypeScript SDK's footprint: its browser bundle's size (minified and gzipped) and its memory per
client under Node (N GigwireClients connected to one hub, authenticated and subscribed; the heap
growth after a full GC divided by N), beside N bare `ws` connections doing the same.

    .venv/bin/python bench/sdk_js.py --clients 1000

Needs the built SDK (./test builds clients/js), `ws` in .deps/node, PostgreSQL on 127.0.0.1:5432
(a scratch database is created and dropped) and Redis on 127.0.0.1:6379 (a unique key prefix). The
node side is clients/js/scripts/bench-memory.mjs."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ws_fanout import ADMIN_DSN, start_node  # noqa: E402
from hub.db import create_pool, migrate_dsn  # noqa: E402
from hub.settings import Settings  # noqa: E402
from tests.factories import make_order, make_user  # noqa: E402
from tests.services import free_port  # noqa: E402


async def main(args: argparse.Namespace) -> None:
    database = f"gigwire_bench_{uuid.uuid4().hex[:8]}"
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + database
    prefix = f"gwbench:{uuid.uuid4().hex[:8]}:"
    secret = secrets.token_urlsafe(48)
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    hub: subprocess.Popen[bytes] | None = None
    try:
        await migrate_dsn(dsn)
        pool = await create_pool(dsn, min_size=1, max_size=2)
        settings = Settings(jwt_secret=secret)
        client, doer = await make_user(pool, settings), await make_user(pool, settings)
        order_id = await make_order(pool, client, doer)
        await pool.close()
        port = free_port()
        hub = await start_node(port, dsn, prefix, secret)
        spec = {
            "url": f"ws://127.0.0.1:{port}/ws",
            "tokens": [client.token, doer.token],
            "orderId": order_id,
            "n": args.clients,
            "deps": str(ROOT / ".deps" / "node"),
        }
        script = ROOT / "clients" / "js" / "scripts" / "bench-memory.mjs"
        proc = await asyncio.create_subprocess_exec(
            "node", "--expose-gc", str(script), json.dumps(spec), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        result = json.loads(out.decode().strip().splitlines()[-1])
        bundle = result["bundle"]
        print(
            f"bundle: {bundle['bytes']} B, minified {bundle['minified']} B, gzip {bundle['minifiedGzip']} B"
        )
        print(
            f"{result['clients']} clients on Node {result['node']}: {result['heapPerSdkClient']} B of heap"
            f" per SDK client, {result['heapPerBareWs']} B per bare ws connection"
        )
    finally:
        if hub is not None:
            hub.send_signal(signal.SIGTERM)
            try:
                hub.wait(15)
            except subprocess.TimeoutExpired:
                hub.kill()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    asyncio.run(main(parser.parse_args()))
