"""The PostgreSQL pool and the migration runner."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

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


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 20) -> Pool:
    """A pool whose connections encode and decode json/jsonb with orjson."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_keep_session
    )
    assert pool is not None
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
