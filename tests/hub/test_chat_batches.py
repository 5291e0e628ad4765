"""Chat stored in batches (hub/chat_writer.py, hub.chat.store_batch): concurrent senders on two
nodes keep each order's seq gapless and ordered, resends are stored once inside a batch, across
batches and across nodes, an ACK is only ever given for a stored message, and no hot chat query
depends on fresh planner statistics."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import asyncpg

from hub import chat
from hub.frame import Frame
from hub.keys import HUB
from tests.factories import make_order
from tests.hub.conftest import Conn, Node, NodeFactory, Pair

FAST = {"chat_rate_per_s": 10_000.0, "chat_burst": 10_000}
_refs = itertools.count()


async def burst(
    conn: Conn, order_id: str | list[str], texts: list[str], cmid: str | None = None
) -> list[dict[str, Any]]:
    """Send every text (to `order_id`, or to the orders given one per text) without waiting, then
    collect each one's answer (by ref), in order."""
    refs = []
    orders = order_id if isinstance(order_id, list) else [order_id] * len(texts)
    for order, text in zip(orders, texts, strict=True):
        ref = f"b{next(_refs)}"
        data: dict[str, Any] = {"orderId": order, "text": text}
        if cmid is not None:
            data["clientMsgId"] = cmid
        await conn.send("CHAT_MESSAGE", data, ref)
        refs.append(ref)
    answers: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(30):
        while len(answers) < len(refs):
            frame = await conn.next(30)
            if frame.get("ref") in refs:
                answers[frame["ref"]] = frame
    return [answers[r] for r in refs]


async def seqs(pool: asyncpg.Pool, order_id: str) -> list[int]:
    return [
        r[0] for r in await pool.fetch("SELECT seq FROM messages WHERE order_id = $1 ORDER BY seq", order_id)
    ]


async def test_concurrent_senders_on_two_nodes_keep_each_order_gapless(
    make_node: NodeFactory, pair: Pair, pool: asyncpg.Pool, settings: Any
) -> None:
    a_node, b_node = await make_node(**FAST), await make_node(**FAST)
    other = Pair(pair.client, pair.doer, await make_order(pool, pair.client, pair.doer))
    senders = [await a_node.connect(pair.client) for _ in range(3)]
    senders += [await b_node.connect(pair.doer) for _ in range(3)]
    watcher = await b_node.connect(pair.client, subscribe=pair.order_id)
    both = [pair.order_id, other.order_id] * 40
    jobs = [burst(conn, both, [f"s{i} m{j}" for j in range(80)]) for i, conn in enumerate(senders)]
    results = await asyncio.gather(*jobs)
    acks = [f for answers in results for f in answers]
    assert all(f["type"] == "ACK" for f in acks), [f for f in acks if f["type"] != "ACK"][:3]
    for order in (pair.order_id, other.order_id):
        ids = await _ids(pool, order)
        got = sorted(f["data"]["seq"] for f in acks if f["data"]["id"] in ids)
        assert got == list(range(1, 241)) == await seqs(pool, order)
        assert await chat.last_seq(pool, order) == 240
    # Each sender's own messages got increasing seqs, per order, in the order it sent them.
    for answers in results:
        for parity in (0, 1):
            order_seqs = [f["data"]["seq"] for f in answers[parity::2]]
            assert order_seqs == sorted(order_seqs)
    # Batching happened: fewer statements than messages on at least one node.
    writers = [n.app[HUB].writer for n in (a_node, b_node)]
    assert sum(w.messages for w in writers) == 480
    assert any(w.batches < w.messages for w in writers)
    # A live subscriber on the other node saw the first order's 240 messages once each, in order.
    seen: list[int] = []
    async with asyncio.timeout(20):
        while len(seen) < 240:
            frame = await watcher.next(20)
            if frame["type"] == "CHAT_MESSAGE":
                seen.append(frame["data"]["seq"])
    assert seen == list(range(1, 241))


async def _ids(pool: asyncpg.Pool, order_id: str) -> set[str]:
    rows = await pool.fetch("SELECT id::text FROM messages WHERE order_id = $1", order_id)
    return {r[0] for r in rows}


async def test_resends_are_stored_once_inside_a_batch_across_batches_and_nodes(
    make_node: NodeFactory, pair: Pair, pool: asyncpg.Pool
) -> None:
    a_node, b_node = await make_node(**FAST), await make_node(**FAST)
    a1, a2 = await a_node.connect(pair.client), await a_node.connect(pair.client)
    b1 = await b_node.connect(pair.client)
    # Inside one batch: five copies sent back to back from one connection.
    inside = await burst(a1, pair.order_id, ["same"] * 5, cmid="in-batch")
    assert len({f["data"]["id"] for f in inside}) == 1 and inside[0]["data"]["seq"] == 1
    # Across batches: later resends get the first message.
    later = await burst(a1, pair.order_id, ["same"], cmid="in-batch")
    assert later[0]["data"] == inside[0]["data"]
    # Across nodes, racing: the same clientMsgIds from three sessions of the sender at once.
    for k in range(10):
        cmid = f"race-{k}"
        answers = await asyncio.gather(
            *(burst(c, pair.order_id, ["raced"] * 2, cmid=cmid) for c in (a1, a2, b1))
        )
        ids = {f["data"]["id"] for group in answers for f in group}
        assert len(ids) == 1, answers
    rows = await pool.fetch(
        "SELECT client_msg_id, count(*) FROM messages WHERE order_id = $1 GROUP BY 1", pair.order_id
    )
    assert {r[0]: r[1] for r in rows} == {"in-batch": 1, **{f"race-{k}": 1 for k in range(10)}}
    assert await seqs(pool, pair.order_id) == list(range(1, 12))


async def test_a_message_stored_but_never_acked_is_found_by_its_resend(
    node: Node, pair: Pair, pool: asyncpg.Pool
) -> None:
    """The process dies between the insert and the ACK (here: the connection is cut right after the
    commit, before anything is sent): nothing was ACKed, and the resend is answered with the stored
    message, stored once."""
    a = await node.connect(pair.client, subscribe=pair.order_id)
    hub = node.app[HUB]
    real_send = hub.send_chat

    def cut(order_id: str, frame: Frame) -> None:
        hub.send_chat = real_send  # type: ignore[method-assign]
        for session in list(hub.sessions):
            if session.user_id == pair.client.id:
                session.close(1011, "crash", flush=False)

    hub.send_chat = cut  # type: ignore[method-assign]
    msg = {"orderId": pair.order_id, "text": "stored, never acked", "clientMsgId": "cut-1"}
    await a.send("CHAT_MESSAGE", msg, "r-cut")
    frames = []
    async with asyncio.timeout(5):
        while (got := await a.ws.receive()).type is aiohttp.WSMsgType.TEXT:
            frames.append(got.json())
    assert not [f for f in frames if f.get("ref") == "r-cut"], frames  # no ACK, no ERROR
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE order_id = $1", pair.order_id) == 1
    again = await node.connect(pair.client)
    ack = await again.ack("CHAT_MESSAGE", msg)
    row = await pool.fetchrow("SELECT id::text, seq FROM messages WHERE order_id = $1", pair.order_id)
    assert row is not None and (ack["id"], ack["seq"]) == (row[0], row[1]) == (row[0], 1)
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE order_id = $1", pair.order_id) == 1


async def test_a_message_the_database_refuses_fails_alone(
    make_node: NodeFactory, pair: Pair, pool: asyncpg.Pool
) -> None:
    """A batch the database refuses whole (here a constraint one message breaks) is stored again
    message by message: only that message fails; the others of its batch are stored and ACKed."""
    node = await make_node(**FAST)
    conn = await node.connect(pair.client)
    await pool.execute(
        "ALTER TABLE messages ADD CONSTRAINT test_no_poison CHECK (text <> 'poison') NOT VALID"
    )
    try:
        texts = ["fine 1", "fine 2", "poison", "fine 3", "fine 4"]
        answers = await burst(conn, pair.order_id, texts)
    finally:
        await pool.execute("ALTER TABLE messages DROP CONSTRAINT test_no_poison")
    kinds = [f["type"] for f in answers]
    assert kinds == ["ACK", "ACK", "ERROR", "ACK", "ACK"]
    assert answers[2]["data"]["code"] == "internal"
    assert await seqs(pool, pair.order_id) == [1, 2, 3, 4]
    stored = await pool.fetch("SELECT text FROM messages WHERE order_id = $1 ORDER BY seq", pair.order_id)
    assert [r[0] for r in stored] == ["fine 1", "fine 2", "fine 3", "fine 4"]


async def test_hot_chat_queries_use_indexes_on_a_table_analysed_while_empty(
    pool: asyncpg.Pool, pair: Pair
) -> None:
    """Planner statistics that say `messages` is empty (analysed while small, autovacuum behind) must
    not turn a hot query into a sequential scan: each plan, custom and generic, is an index scan."""
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE messages SET (autovacuum_enabled = false)")
        try:
            await conn.execute("ANALYZE messages")
            # A message's order is checked through its chat counter (0023_chat_wal.sql).
            await conn.execute(
                "INSERT INTO chat_sequences (order_id, last_seq) VALUES ($1, 101000)"
                " ON CONFLICT (order_id) DO UPDATE SET last_seq = 101000",
                pair.order_id,
            )
            await conn.execute(
                "INSERT INTO messages (order_id, seq, sender_id, text, client_msg_id)"
                " SELECT $1, g, $2, 'bulk', 'bulk-' || g FROM generate_series(1000, 101000) AS g",
                pair.order_id,
                pair.client.id,
            )
            batch = chat._STORE_BATCH
            args = ([0], [pair.order_id], [pair.client.id], ["x"], ["[]"], ["bulk-5000"], [pair.doer.id])
            queries: list[tuple[str, tuple[Any, ...]]] = [
                (batch, args),
                (f"SELECT {chat._MESSAGE_COLS} FROM messages WHERE order_id = $1 AND seq > $2 AND seq <= $3"
                 " ORDER BY seq LIMIT $4", (pair.order_id, 5000, 5100, 200)),
                ("SELECT order_id::text, seq FROM messages WHERE id = $1::uuid",
                 ("00000000-0000-0000-0000-000000000000",)),
            ]  # fmt: skip
            for mode in ("force_custom_plan", "force_generic_plan"):
                await conn.execute(f"SET plan_cache_mode = {mode}")
                for sql, params in queries:
                    plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *params))
                    assert "Seq Scan on messages" not in plan, f"{mode}:\n{plan}"
        finally:
            await conn.execute("RESET plan_cache_mode")
            await conn.execute("DELETE FROM messages WHERE order_id = $1", pair.order_id)
            await conn.execute("ALTER TABLE messages RESET (autovacuum_enabled)")
            await conn.execute("ANALYZE messages")
