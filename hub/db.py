"""The PostgreSQL pool and the migration runner.

The pool is sized by DATABASE_POOL_MIN/MAX and never waits without bound: taking a connection
(every query of the pool's and every `acquire`) waits at most DATABASE_ACQUIRE_TIMEOUT seconds for
one to be free, retrying meanwhile, with backoff, when PostgreSQL refuses a new connection (too many
clients, starting up, not listening). When none can be had it raises DatabaseUnavailable, which each
caller answers in its own words (REST: 503 with Retry-After; realtime: per event)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolAcquireContext

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    _PoolBase = asyncpg.Pool[asyncpg.Record]
    _ContextBase = PoolAcquireContext[asyncpg.Record]
else:
    _PoolBase = asyncpg.Pool
    _ContextBase = PoolAcquireContext

log = logging.getLogger("gigwire.db")

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "sql" / "migrations"
# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK = 0x6769677769726500

Pool = asyncpg.Pool
# A connection of the caller's: plain, or borrowed from a pool (its proxy has the same API). A string
# alias so that importing it needs no typing-only name at runtime.
Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind, schema="pg_catalog", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's full reset (RESET ALL, UNLISTEN *, CLOSE ALL, advisory unlocks: one
    more round trip per release). gigwire leaves no session state on pooled connections: it sets no
    session settings, its advisory locks on them are transaction-scoped, and the workers' LISTEN
    connection unlistens before release. asyncpg still rolls back a transaction left open (and
    forgets listeners) before calling this."""


POOL_MIN = 2
POOL_MAX = 20
ACQUIRE_TIMEOUT_S = 5.0
"""The defaults of DATABASE_POOL_MIN, DATABASE_POOL_MAX and DATABASE_ACQUIRE_TIMEOUT."""

REFUSALS: tuple[type[BaseException], ...] = (
    asyncpg.TooManyConnectionsError,  # 53300: max_connections, or a role's or database's limit
    asyncpg.CannotConnectNowError,  # 57P03: starting up, shutting down, in recovery
    ConnectionRefusedError,  # nothing listening (a restart)
)
"""What PostgreSQL answers a new connection it will not take now: retried until the acquire
timeout."""
_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 1.0


class DatabaseUnavailable(Exception):
    """No connection within the acquire timeout: all are busy, or PostgreSQL refuses or cannot be
    reached. The acquire that raised it ran nothing on the database (an operation that had already
    committed on another connection may have done part of its work)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _take(pool: GigPool, wait_s: float) -> PoolConnectionProxy[Any]:
    """A connection of `pool` within `wait_s` seconds, refusals retried with backoff until then."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    delay = _BACKOFF_FIRST_S
    while True:
        remaining = deadline - loop.time()
        try:
            return await asyncpg.Pool.acquire(pool, timeout=max(remaining, 0.001))
        except TimeoutError:
            raise DatabaseUnavailable(f"no database connection free within {wait_s:g} s") from None
        except REFUSALS as exc:
            if loop.time() + delay >= deadline:  # logged by whoever answers it, once
                raise DatabaseUnavailable(f"the database refuses connections ({exc})") from exc
        except OSError as exc:  # unreachable: no point retrying within a request
            raise DatabaseUnavailable(f"the database cannot be reached ({exc})") from exc
        await asyncio.sleep(delay)
        delay = min(delay * 2, _BACKOFF_MAX_S)


class _Acquire(_ContextBase):
    """`pool.acquire()` as asyncpg's, but bounded by the pool's acquire timeout and retrying
    refusals (see `_take`)."""

    __slots__ = ()

    async def __aenter__(self) -> PoolConnectionProxy[Any]:
        if self.connection is not None or self.done:
            raise asyncpg.InterfaceError("a connection is already acquired")
        assert isinstance(self.pool, GigPool) and self.timeout is not None
        self.connection = await _take(self.pool, self.timeout)
        return self.connection

    def __await__(self) -> Generator[Any, None, PoolConnectionProxy[Any]]:
        self.done = True
        assert isinstance(self.pool, GigPool) and self.timeout is not None
        return _take(self.pool, self.timeout).__await__()


class GigPool(_PoolBase):
    """asyncpg's pool whose `acquire` (which all its query methods use) waits at most
    `acquire_timeout` seconds and raises DatabaseUnavailable instead of waiting for ever or
    failing at the first refusal."""

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> _Acquire:
        return _Acquire(self, self.acquire_timeout if timeout is None else timeout)

    async def release(
        self,
        connection: PoolConnectionProxy[asyncpg.Record],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (asyncpg's signature)
    ) -> None:
        # asyncpg bounds a release by the timeout its acquire was given, which after retried
        # refusals is only what was left: bound it by the whole acquire timeout instead.
        await super().release(connection, timeout=self.acquire_timeout if timeout is None else timeout)


async def create_pool(
    dsn: str,
    min_size: int = POOL_MIN,
    max_size: int = POOL_MAX,
    acquire_timeout: float = ACQUIRE_TIMEOUT_S,
) -> Pool:
    """A GigPool of `min_size`..`max_size` connections whose connections encode and decode
    json/jsonb with orjson; opening its first `min_size` connections is not retried."""
    pool = GigPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        init=_init_connection,
        reset=_keep_session,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        acquire_timeout=acquire_timeout,
    )
    await pool
    return pool


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every pending `NNNN_name.sql` in order, each in its own transaction, under an advisory
    lock so that concurrent starters migrate once. Returns the names applied by this call."""
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        applied: list[str] = []
        # Reading a few small files at start-up; blocking the loop here costs nothing.
        files = sorted(directory.glob("[0-9][0-9][0-9][0-9]_*.sql"))  # noqa: ASYNC240
        for path in files:
            if path.stem in done:
                continue
            sql = path.read_text()
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.stem)
            log.info("migration applied", extra={"migration": path.stem})
            applied.append(path.stem)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


async def migrate_dsn(dsn: str) -> list[str]:
    """Connect, migrate, disconnect."""
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
