"""Finding or starting the PostgreSQL and Redis the tests run against.

Order of preference, for each: the URL in the environment (DATABASE_URL / REDIS_URL), the server on
localhost when reachable, a private server started here (pgserver for PostgreSQL, the redis-server
binary for Redis). Every test run gets its own database and its own Redis key prefix."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """A private redis-server on a loopback port, which a test may stop and start again."""

    def __init__(self, port: int | None = None, extra: list[str] | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (./test installs it with apt-get as root)")
        self.binary = binary
        self.port = port or free_port()
        self.extra = extra or []
        self.dir = tempfile.mkdtemp(prefix="gigwire-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _reachable("127.0.0.1", self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Kill it at once, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Services:
    admin_dsn: str
    dsn: str
    database: str
    redis_url: str
    redis_prefix: str
    _cleanups: list[Any]

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception as exc:
                print(f"test cleanup failed: {exc}")
        self._cleanups.clear()


def _with_database(dsn: str, database: str) -> str:
    """`dsn` pointing at `database` (keeps any ?host=/socket query)."""
    head, sep, query = dsn.partition("?")
    scheme, _, rest = head.partition("://")
    authority, _, _ = rest.partition("/")
    return f"{scheme}://{authority}/{database}{sep}{query}"


def _postgres(cleanups: list[Any]) -> str:
    env = os.environ.get("DATABASE_URL")
    if env:
        return env
    if _reachable("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    import pgserver

    path = Path(tempfile.mkdtemp(prefix="gigwire-pg-"))
    server = pgserver.get_server(path, cleanup_mode="delete")
    cleanups.append(server.cleanup)
    uri: str = server.get_uri()
    return uri


def _redis(cleanups: list[Any]) -> str:
    env = os.environ.get("REDIS_URL")
    if env:
        return env
    if _reachable("127.0.0.1", 6379):
        return "redis://127.0.0.1:6379/0"
    server = RedisServer()
    server.start()
    cleanups.append(server.cleanup)
    return server.url


async def _create_db(admin_dsn: str, database: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


async def _drop_db(admin_dsn: str, database: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


async def _clear_prefix(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        for i in range(0, len(keys), 500):
            await client.delete(*keys[i : i + 500])
    finally:
        await client.aclose()


def provision() -> Services:
    """Find or start PostgreSQL and Redis; create this run's database (migrated) and key prefix."""
    import asyncio

    from hub.db import migrate_dsn

    cleanups: list[Any] = []
    admin_dsn = _postgres(cleanups)
    redis_url = _redis(cleanups)
    run = uuid.uuid4().hex[:10]
    database = f"gigwire_test_{run}"
    prefix = f"gwtest:{run}:"
    asyncio.run(_create_db(admin_dsn, database))
    dsn = _with_database(admin_dsn, database)
    cleanups.append(lambda: asyncio.run(_drop_db(admin_dsn, database)))
    cleanups.append(lambda: asyncio.run(_clear_prefix(redis_url, prefix)))
    asyncio.run(migrate_dsn(dsn))
    services = Services(admin_dsn, dsn, database, redis_url, prefix, cleanups)
    atexit.register(services.close)
    return services
