"""Chaos: two SDK clients chat both ways through proxies while their connections are cut (twice)
and the hub one of them is on is SIGKILLed; feed events are committed over REST while both are cut
off. Afterwards every message sent through the SDK is stored exactly once, each side has received
every message exactly once and in seq order, and both got the feed events they missed."""

from __future__ import annotations

import asyncio

import asyncpg
from gigwire_client import ChatAck, ChatMessage, GigwireClient, Notification, OrderUpdate, StaticToken

from tests.sdk_py.conftest import Gigwire, Parties
from tests.sdk_py.test_client import Recorder, publish

PER_SIDE = 40
INTERVAL_S = 0.12  # ~8 a second each: under the chat rate limit, so resends are what bursts


async def _talk(client: GigwireClient, order_id: str, name: str) -> list[asyncio.Future[ChatAck]]:
    futures = []
    for i in range(PER_SIDE):
        futures.append(client.send_nowait(order_id, f"{name}-{i}"))
        await asyncio.sleep(INTERVAL_S)
    return futures


async def test_cuts_and_a_killed_hub_lose_and_duplicate_nothing(
    gigwire: Gigwire, parties: Parties, pool: asyncpg.Pool
) -> None:
    proxy_a, proxy_b = await gigwire.proxy(0), await gigwire.proxy(1)
    a = GigwireClient(proxy_a.url, StaticToken(parties.client.token), backoff_min_s=0.1, backoff_max_s=1.0)
    b = GigwireClient(proxy_b.url, StaticToken(parties.doer.token), backoff_min_s=0.1, backoff_max_s=1.0)
    seen_a, seen_b = Recorder(a), Recorder(b)
    rest = gigwire.hubs[1].url
    async with a, b:
        await a.wait_connected(10)
        await b.wait_connected(10)
        await a.subscribe(parties.order_id)
        await b.subscribe(parties.order_id)
        start_feed = (a.feed_seq, b.feed_seq)
        talking = asyncio.gather(_talk(a, parties.order_id, "a"), _talk(b, parties.order_id, "b"))

        await asyncio.sleep(1.0)
        # Cut 1: both connections dropped and kept down while feed events are committed over REST.
        proxy_a.target = proxy_b.target = 1
        assert proxy_a.cut() + proxy_b.cut() == 2
        async with gigwire.http.post(
            rest + f"/api/orders/{parties.order_id}/dispute",
            headers={"Authorization": f"Bearer {parties.doer.token}"},
            json={"reason": "Cut off mid-chat"},
        ) as resp:
            assert resp.status == 200, await resp.text()
        await publish(gigwire, pool, {"orderId": parties.order_id, "title": "During the cut"})
        await asyncio.sleep(1.0)
        proxy_a.target, proxy_b.target = gigwire.port(0), gigwire.port(1)
        await a.wait_connected(15)
        await b.wait_connected(15)

        await asyncio.sleep(1.0)
        # Cut 2: hub A is killed (A's sessions vanish with it); A comes back through hub B.
        gigwire.kill(0)
        proxy_a.target = gigwire.port(1)
        proxy_a.cut()
        proxy_b.cut()

        sent_a, sent_b = await asyncio.wait_for(talking, 60)
        acks = await asyncio.wait_for(asyncio.gather(*sent_a, *sent_b), 60)
        total = 2 * PER_SIDE
        for seen in (seen_a, seen_b):
            await seen.until(lambda s=seen: len(s.of(ChatMessage)) >= total, within=30)
        await asyncio.sleep(0.5)  # anything duplicated would arrive now

    # Stored exactly once each, under the clientMsgId the SDK gave it.
    rows = await pool.fetch(
        "SELECT seq, sender_id::text, text, client_msg_id FROM messages WHERE order_id = $1 ORDER BY seq",
        parties.order_id,
    )
    assert len(rows) == total
    assert sorted(r["client_msg_id"] for r in rows) == sorted(x.client_msg_id for x in acks)
    assert [r["seq"] for r in rows] == list(range(1, total + 1))
    for sender, name in ((parties.client.user_id, "a"), (parties.doer.user_id, "b")):
        assert [r["text"] for r in rows if r["sender_id"] == sender] == [
            f"{name}-{i}" for i in range(PER_SIDE)
        ]
    # Received exactly once each, in seq order, by both sides.
    for seen in (seen_a, seen_b):
        got = seen.of(ChatMessage)
        assert [m.seq for m in got] == list(range(1, total + 1))
        assert [m.text for m in got] == [r["text"] for r in rows]
    # The feed events committed during the cut reached both, once, in feedSeq order.
    for seen, (user, first) in (
        (seen_a, (parties.client, start_feed[0])),
        (seen_b, (parties.doer, start_feed[1])),
    ):
        updates = seen.of(OrderUpdate)
        assert [u.status for u in updates] == ["disputed"], user
        assert "During the cut" in [n.title for n in seen.of(Notification)]
        feed = [e.feed_seq for e in seen.events if isinstance(e, OrderUpdate | Notification)]
        assert first is not None and feed == list(range(first + 1, first + 1 + len(feed)))
        stored = await pool.fetchval("SELECT last_seq FROM feed_sequences WHERE user_id = $1", user.user_id)
        assert feed[-1] == stored
