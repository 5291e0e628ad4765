"""The order channel's gap fill and its joining sessions: a fill asked for while one runs runs again
right after (a joining subscriber is not left waiting for the next message), and a joining session's
buffer of live frames is bounded like its queue."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from hub import chat
from hub.hub import Hub, OrderChannel
from hub.keys import HUB
from hub.metrics import METRICS
from tests.hub.conftest import NodeFactory, Pair


class Gate:
    """Holds `chat.messages_after` calls made from tasks `which` selects until opened; `entered` is
    set once one is held."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, which: str, held: bool) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()
        real = chat.messages_after

        async def gated(*args: Any, **kwargs: Any) -> list[asyncpg.Record]:
            task = asyncio.current_task()
            name = task.get_name() if task is not None else ""
            if name.startswith(which) == held and not self.opened.is_set():
                self.entered.set()
                await self.opened.wait()
            return await real(*args, **kwargs)

        monkeypatch.setattr(chat, "messages_after", gated)


def channel(hub: Hub, order_id: str) -> OrderChannel:
    oc = hub.orders.get(order_id)
    assert oc is not None
    return oc


async def test_fill_asked_for_while_one_runs_runs_again_and_promotes_the_joiner(
    make_node: NodeFactory, pair: Pair, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = await make_node()
    hub = node.app[HUB]
    order = pair.order_id
    a = await node.connect(pair.client, subscribe=order)  # the channel's position: seq 0
    # Stored by a process that died before publishing: the channel is behind PostgreSQL.
    await chat.store_message(pool, order, pair.client.id, "one", [], None, recipient_id=pair.doer.id)
    gate = Gate(monkeypatch, "gigwire-gap-fill", held=True)
    # b reads last seq 1 and asks for a fill; the fill reads its target (1) and is held.
    b = await node.connect(pair.doer, subscribe=order)
    await gate.entered.wait()
    await chat.store_message(pool, order, pair.doer.id, "two", [], None, recipient_id=pair.client.id)
    # c reads last seq 2 while the fill (target 1) runs: its fill request must not be lost.
    c = await node.connect(pair.doer)
    ack = await c.ack("SUBSCRIBE_CHAT", {"orderId": order, "sinceSeq": 0})
    assert (ack["lastSeq"], ack["replayed"]) == (2, 2)
    assert [f["data"]["seq"] for f in c.skipped if f["type"] == "CHAT_MESSAGE"] == [1, 2]  # replayed
    c.skipped.clear()
    oc = channel(hub, order)
    assert oc.filling and len(oc.joining) == 2
    gate.opened.set()
    # No further message is sent: the fill reads again and delivers seq 2 to the live subscribers.
    assert [(await a.expect("CHAT_MESSAGE"))["data"]["seq"] for _ in range(2)] == [1, 2]
    got = await b.expect("CHAT_MESSAGE")
    assert (got["data"]["seq"], got["data"]["text"]) == (2, "two")
    # Emitting seq 2 and promoting c happen in one step, before a could read it.
    assert oc.last == 2 and not oc.joining and len(oc.live) == 3
    await a.send("TYPING_START", {"orderId": order})
    for conn in (b, c):
        typing = await conn.expect("TYPING_START")
        assert typing["data"] == {"orderId": order, "userId": pair.client.id}
    assert [f for f in c.skipped if f["type"] == "CHAT_MESSAGE"] == []  # nothing twice


async def test_joining_buffer_past_the_queue_bound_closes_1013(
    make_node: NodeFactory, pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound = 5
    node = await make_node(ws_queue_max_frames=bound)
    hub = node.app[HUB]
    order = pair.order_id
    overflows = node.app[METRICS].queue_overflows.labels("ws")
    before = overflows._value.get()
    a = await node.connect(pair.client, subscribe=order)
    b = await node.connect(pair.doer, subscribe=order)
    await a.ack("CHAT_MESSAGE", {"orderId": order, "text": "history"})
    assert (await b.expect("CHAT_MESSAGE"))["data"]["seq"] == 1
    removed = asyncio.Event()
    remove = hub.remove_session

    async def removing(session: Any) -> None:
        await remove(session)
        removed.set()

    monkeypatch.setattr(hub, "remove_session", removing)
    gate = Gate(monkeypatch, "gigwire-gap-fill", held=False)
    slow = await node.connect(pair.doer)
    await slow.send("SUBSCRIBE_CHAT", {"orderId": order, "sinceSeq": 0})
    await gate.entered.wait()  # its history read is held: it is joining, buffering live frames
    oc = channel(hub, order)
    assert len(oc.joining) == 1
    for i in range(bound + 1):
        await a.ack("CHAT_MESSAGE", {"orderId": order, "text": f"live {i}"})
        assert (await b.expect("CHAT_MESSAGE"))["data"]["seq"] == i + 2
    assert await slow.closed() == 1013
    assert overflows._value.get() == before + 1
    assert not oc.joining and len(oc.live) == 2  # its buffer is dropped at once
    gate.opened.set()
    await removed.wait()
    assert hub.orders.get(order) is oc and not oc.joining and len(oc.live) == 2
    assert len(hub.sessions) == 2
    # The others are unaffected and keep receiving.
    await b.ack("CHAT_MESSAGE", {"orderId": order, "text": "after"})
    seqs = [f["data"]["seq"] for f in a.skipped if f["type"] == "CHAT_MESSAGE"]
    while (got := await a.expect("CHAT_MESSAGE"))["data"]["text"] != "after":
        seqs.append(got["data"]["seq"])
    assert [*seqs, got["data"]["seq"]] == list(range(1, bound + 4))
