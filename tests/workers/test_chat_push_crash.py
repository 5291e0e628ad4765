"""Chat pushes wait in an unlogged table (0023_chat_wal.sql), which PostgreSQL's crash recovery
empties. These tests crash a private PostgreSQL (immediate stop: no shutdown checkpoint, so the
next start runs crash recovery) between storing messages and the push sender taking them, and check
that every chat still gets its push, and that a read chat or a clean restart gets none twice."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hub.chat import Outgoing, store_batch
from hub.db import create_pool, migrate
from hub.settings import Settings
from tests.factories import make_order, make_user
from tests.workers.conftest import add_device
from tests.workers.fake_fcm import FakeFcm
from workers.fcm import FcmSender
from workers.metrics import WorkerMetrics
from workers.push import PushWorker


class PrivatePostgres:
    """A PostgreSQL of this test's own (pgserver's binaries), which it may crash and restart."""

    def __init__(self) -> None:
        import pgserver

        self._dir = tempfile.mkdtemp(prefix="gigwire-crash-")
        self._server = pgserver.get_server(self._dir, cleanup_mode="delete")
        self.dsn = self._server.get_uri()

    def _pg_ctl(self, *args: str) -> None:
        import pgserver._commands as commands

        commands.pg_ctl(list(args), pgdata=self._server.pgdata, user=self._server.system_user)

    def crash(self) -> None:
        """Stop at once, as a crash would: the next start replays the WAL and resets unlogged tables."""
        self._pg_ctl("stop", "-m", "immediate", "-w")

    def restart_clean(self) -> None:
        self._pg_ctl("stop", "-m", "fast", "-w")
        self.start()

    def start(self) -> None:
        pgdata = self._server.pgdata
        self._pg_ctl("start", "-w", "-o", f"-k {pgdata} -h ''", "-l", str(Path(pgdata) / "restart.log"))

    def close(self) -> None:
        self._server.cleanup()


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    pytest.importorskip("pgserver")
    server = PrivatePostgres()
    yield server
    server.close()


@pytest.fixture
async def crash_pool(private_pg: PrivatePostgres) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(private_pg.dsn, min_size=0, max_size=4)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


async def _chat(pool: asyncpg.Pool, settings: Settings) -> tuple[Any, Any, str, str]:
    client = await make_user(pool, settings, name="Asha")
    doer = await make_user(pool, settings, name="Ravi")
    order_id = await make_order(pool, client, doer)
    return client, doer, order_id, await add_device(pool, client)


async def _push_all(worker: PushWorker, pool: asyncpg.Pool) -> None:
    for _ in range(100):
        await worker.run_once()
        left = await pool.fetchval(
            "SELECT (SELECT count(*) FROM push_jobs) + (SELECT count(*) FROM chat_push_pending)"
        )
        if left == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("chat pushes still queued")


async def test_a_crash_before_the_push_sender_ran_still_pushes_every_unread_chat(
    private_pg: PrivatePostgres,
    crash_pool: asyncpg.Pool,
    settings: Settings,
    fcm: FakeFcm,
    sender: FcmSender,
    tmp_path: Path,
) -> None:
    client, doer, order_id, token = await _chat(crash_pool, settings)
    # A second chat whose recipient has read everything: no push for it after the crash either.
    other_client, other_doer, read_order, other_token = await _chat(crash_pool, settings)
    batch = [Outgoing(order_id, doer.id, f"draft {i}", [], f"m{i}", client.id) for i in range(3)]
    batch.append(Outgoing(read_order, other_doer.id, "seen already", [], "r1", other_client.id))
    await store_batch(crash_pool, batch)
    await crash_pool.execute(
        "INSERT INTO message_reads (order_id, user_id, last_read_seq) VALUES ($1, $2, 1)",
        read_order,
        other_client.id,
    )
    assert await crash_pool.fetchval("SELECT count(*) FROM chat_push_pending") == 2
    await crash_pool.close()

    private_pg.crash()
    private_pg.start()
    pool = await create_pool(private_pg.dsn, min_size=0, max_size=4)
    try:
        # Crash recovery emptied the waiting pushes; the messages themselves are durable.
        assert await pool.fetchval("SELECT count(*) FROM chat_push_pending") == 0
        assert await pool.fetchval("SELECT count(*) FROM chat_push_epoch") == 0
        assert await pool.fetchval("SELECT count(*) FROM messages") == 4
        worker = PushWorker(pool, sender, WorkerMetrics(), base_delay=0.05)
        await _push_all(worker, pool)
        (pushed,) = fcm.sent_to(token)
        assert pushed["notification"] == {"title": "Ravi", "body": "draft 2"}
        assert pushed["data"]["seq"] == "3" and pushed["data"]["unread"] == "3"
        assert fcm.sent_to(other_token) == []  # read up to its newest message before the crash
        assert await pool.fetchval("SELECT count(*) FROM chat_push_epoch") == 1
        # Recovered once: later rounds queue nothing again.
        worker = PushWorker(pool, sender, WorkerMetrics(), base_delay=0.05)
        await _push_all(worker, pool)
        assert len(fcm.sent_to(token)) == 1
    finally:
        await pool.close()


async def test_a_clean_restart_keeps_waiting_pushes_and_repeats_none(
    private_pg: PrivatePostgres,
    crash_pool: asyncpg.Pool,
    settings: Settings,
    fcm: FakeFcm,
    sender: FcmSender,
) -> None:
    client, doer, order_id, token = await _chat(crash_pool, settings)
    await store_batch(crash_pool, [Outgoing(order_id, doer.id, "before the restart", [], "a", client.id)])
    worker = PushWorker(crash_pool, sender, WorkerMetrics(), base_delay=0.05)
    await _push_all(worker, crash_pool)
    await store_batch(crash_pool, [Outgoing(order_id, doer.id, "waiting through it", [], "b", client.id)])
    await crash_pool.close()

    private_pg.restart_clean()
    pool = await create_pool(private_pg.dsn, min_size=0, max_size=4)
    try:
        assert await pool.fetchval("SELECT count(*) FROM chat_push_pending") == 1  # kept
        await _push_all(PushWorker(pool, sender, WorkerMetrics(), base_delay=0.05), pool)
        bodies = [m["notification"]["body"] for m in fcm.sent_to(token)]
        assert bodies == ["before the restart", "waiting through it"]
    finally:
        await pool.close()
