"""Every client event has a per-connection budget (issue 13, defect 9): chat messages their own
(CHAT_RATE_PER_S / CHAT_BURST), every other event, a bad frame too, the events budget
(EVENT_RATE_PER_S / EVENT_BURST); over it the answer is rate_limited with retryAfterMs and nothing
reaches PostgreSQL; a connection that keeps going after being told is closed with 1008. And no
answer waits on a stalled broker (defect 10): with Redis frozen, chat, read marks, typing and PING
are answered at once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from hub.keys import HUB
from tests.hub.conftest import Conn, NodeFactory, Pair
from tests.services import RedisServer

TIGHT = {"event_rate_per_s": 1.0, "event_burst": 5}


async def answers(conn: Conn, frames: list[tuple[str, dict[str, Any] | None]]) -> list[dict[str, Any]]:
    """Send every frame with a ref, then each one's answer, in order."""
    refs = []
    for i, (kind, data) in enumerate(frames):
        ref = f"q{i}-{uuid.uuid4().hex[:6]}"
        await conn.send(kind, data, ref)
        refs.append(ref)
    got: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(10):
        while len(got) < len(refs):
            frame = await conn.next(10)
            if frame.get("ref") in refs:
                got[frame["ref"]] = frame
    return [got[r] for r in refs]


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("PING", None),
        ("TYPING_START", "order"),
        ("SUBSCRIBE_CHAT", "unknown"),
        ("MESSAGE_READ", "unknown-message"),
        ("UNSUBSCRIBE_CHAT", "order"),
        ("AUTHENTICATE", "token"),
        ("NOT_A_TYPE", None),
    ],
)
async def test_each_event_type_is_budgeted(
    make_node: NodeFactory, pair: Pair, kind: str, data: str | None
) -> None:
    node = await make_node(**TIGHT)
    conn = await node.connect(pair.client)
    payload: dict[str, Any] | None = {
        None: None,
        "order": {"orderId": pair.order_id},
        "unknown": {"orderId": str(uuid.uuid4())},
        "unknown-message": {"messageId": str(uuid.uuid4())},
        "token": {"token": pair.client.token},
    }[data]
    got = await answers(conn, [(kind, payload)] * 8)
    codes = [f["data"].get("code") if f["type"] == "ERROR" else f["type"] for f in got]
    assert "rate_limited" not in codes[:5], codes
    assert codes[5:] == ["rate_limited"] * 3, codes
    assert all(f["data"]["retryAfterMs"] > 0 for f in got[5:])
    await asyncio.sleep(got[-1]["data"]["retryAfterMs"] / 1000 + 0.05)
    (again,) = await answers(conn, [("PING", None)])
    assert again["type"] == "PONG"  # the connection stayed open and the budget refilled


async def test_chat_and_events_have_separate_budgets(make_node: NodeFactory, pair: Pair) -> None:
    node = await make_node(**TIGHT, chat_rate_per_s=1.0, chat_burst=2)
    conn = await node.connect(pair.client)
    got = await answers(conn, [("PING", None)] * 5)
    assert [f["type"] for f in got] == ["PONG"] * 5
    chat = [("CHAT_MESSAGE", {"orderId": pair.order_id, "text": f"m{i}"}) for i in range(3)]
    got = await answers(conn, chat)
    assert [f["type"] for f in got[:2]] == ["ACK", "ACK"]
    assert got[2]["data"]["code"] == "rate_limited" and "messages" in got[2]["data"]["message"]


async def test_a_connection_that_keeps_going_is_closed_1008(make_node: NodeFactory, pair: Pair) -> None:
    node = await make_node(**TIGHT)
    conn = await node.connect(pair.client)
    for i in range(200):
        await conn.send("SUBSCRIBE_CHAT", {"orderId": str(uuid.uuid4())}, f"h{i}")
    assert await conn.closed(10) == 1008
    metrics = node.app[HUB].metrics
    assert metrics.rate_limit_closes.labels("ws")._value.get() == 1


@pytest.fixture
def frozen_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        os.kill(server.proc.pid, signal.SIGCONT)
    server.cleanup()


async def test_no_answer_waits_on_a_frozen_broker(
    make_node: NodeFactory, pair: Pair, frozen_redis: RedisServer
) -> None:
    node = await make_node(redis_url=frozen_redis.url)
    a = await node.connect(pair.client, subscribe=pair.order_id)
    b = await node.connect(pair.doer, subscribe=pair.order_id)
    first = await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "before the freeze"})
    assert frozen_redis.proc is not None
    os.kill(frozen_redis.proc.pid, signal.SIGSTOP)  # Redis stalls: publishes time out after 5 s
    try:
        started = time.monotonic()
        got = await answers(
            a,
            [
                ("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "during the freeze"}),
                ("MESSAGE_READ", {"messageId": first["id"]}),
                ("TYPING_START", {"orderId": pair.order_id}),
                ("TYPING_STOP", {"orderId": pair.order_id}),
                ("PING", None),
            ],
        )
        elapsed = time.monotonic() - started
        assert [f["type"] for f in got] == ["ACK", "ACK", "ACK", "ACK", "PONG"], got
        assert elapsed < 2.0, elapsed  # none waited on the broker's 5 s timeout
        # The other party on this process has the stored message at once (local delivery).
        seen = await b.expect("CHAT_MESSAGE")
        while seen["data"]["seq"] != 2:
            seen = await b.expect("CHAT_MESSAGE")
    finally:
        os.kill(frozen_redis.proc.pid, signal.SIGCONT)
