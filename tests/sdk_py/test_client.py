"""The Python SDK (clients/python) against a real gigwire of two hub processes and a worker process:
login and refresh over REST, chat both ways across hubs, typing and read marks, the feed live and
resumed, refusals as typed errors, the bounded outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from gigwire_client import (
    AuthError,
    ChatMessage,
    ConversationUpdated,
    GigwireClient,
    GigwireError,
    Notification,
    OrderUpdate,
    ReadReceipt,
    RefreshingTokens,
    RestClient,
    StateChange,
    StaticToken,
    Tokens,
    Typing,
)

from tests.sdk_py.conftest import Gigwire, Parties


class Recorder:
    """Every event one client delivers, by class."""

    def __init__(self, client: GigwireClient) -> None:
        self.events: list[Any] = []
        client.on(None, self.events.append)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def until(self, check: Callable[[], bool], within: float = 20.0) -> None:
        async with asyncio.timeout(within):
            while not check():  # noqa: ASYNC110 -- filled by the client's callbacks
                await asyncio.sleep(0.02)


def refreshing(gigwire: Gigwire, hub: int, token: str, refresh: str) -> RefreshingTokens:
    rest = RestClient(gigwire.hubs[hub].url, gigwire.http)
    return RefreshingTokens(rest, Tokens(token, refresh, 7200))


async def test_chat_both_ways_across_hubs(gigwire: Gigwire, parties: Parties, pool: asyncpg.Pool) -> None:
    a = GigwireClient(gigwire.hubs[0].url, StaticToken(parties.client.token))
    b = GigwireClient(gigwire.hubs[1].url, StaticToken(parties.doer.token))
    seen_a, seen_b = Recorder(a), Recorder(b)
    async with a, b:
        await a.wait_connected(10)
        await b.wait_connected(10)
        await a.subscribe(parties.order_id)
        await b.subscribe(parties.order_id)
        ack = await a.send(parties.order_id, "hello from A")
        assert ack.seq == 1 and len(ack.client_msg_id) == 32
        await b.send(parties.order_id, "hello from B", client_msg_id="b-1")
        await seen_b.until(lambda: len(seen_b.of(ChatMessage)) == 2)
        await seen_a.until(lambda: len(seen_a.of(ChatMessage)) == 2)
        assert [m.text for m in seen_b.of(ChatMessage)] == ["hello from A", "hello from B"]
        assert seen_b.of(ChatMessage)[1].client_msg_id == "b-1"
        # Typing (throttled: the second call within 3 s sends nothing) and a read mark.
        await b.typing(parties.order_id)
        await b.typing(parties.order_id)
        await seen_a.until(lambda: len(seen_a.of(Typing)) >= 1)
        await b.stop_typing(parties.order_id)
        await seen_a.until(lambda: any(not t.active for t in seen_a.of(Typing)))
        assert [t.active for t in seen_a.of(Typing)] == [True, False]
        read = await b.mark_read(ack.id)
        assert read == {"orderId": parties.order_id, "seq": 1}
        await seen_a.until(lambda: len(seen_a.of(ReadReceipt)) == 1)
        assert seen_a.of(ReadReceipt)[0].user_id == parties.doer.user_id
        # Refusals are typed errors; a refused message is not retried.
        with pytest.raises(GigwireError) as refused:
            await a.send(parties.order_id, "x" * 4001)
        assert refused.value.code == "too_large"
        # REST history through the SDK's helper.
        page = await RestClient(gigwire.hubs[1].url, gigwire.http).history(
            parties.doer.token, parties.order_id
        )
        assert [m.seq for m in page.messages] == [1, 2]
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE order_id = $1", parties.order_id) == 2
    assert [e.state for e in seen_a.of(StateChange)][-1] == "closed"


async def test_feed_live_then_resumed_after_being_away(
    gigwire: Gigwire, parties: Parties, pool: asyncpg.Pool
) -> None:
    """Feed events come live; a client started again with the feedSeq it kept gets only those it
    missed (a server API publish while it was away), not the ones it had."""
    api = RestClient(gigwire.hubs[0].url, gigwire.http)
    a = GigwireClient(gigwire.hubs[1].url, StaticToken(parties.doer.token))
    seen = Recorder(a)
    async with a:
        await a.wait_connected(10)
        await api.call(
            "POST", f"/api/orders/{parties.order_id}/dispute", parties.client.token,
            json={"reason": "The delivery is late"},
        )  # fmt: skip
        await seen.until(lambda: len(seen.of(OrderUpdate)) == 1)
        await asyncio.sleep(0.5)  # the dispute's notification too
        kept = a.feed_seq
    assert seen.of(OrderUpdate)[0].status == "disputed"
    live = [e.feed_seq for e in seen.events if isinstance(e, OrderUpdate | Notification)]
    assert kept is not None and live == list(range(1, kept + 1))
    await publish(gigwire, pool, {"userId": parties.doer.user_id, "title": "While you were away"})
    b = GigwireClient(gigwire.hubs[0].url, StaticToken(parties.doer.token), since_feed_seq=kept)
    again = Recorder(b)
    async with b:
        await again.until(lambda: len(again.of(Notification)) == 1)
        await asyncio.sleep(0.3)
    assert [(n.feed_seq, n.title) for n in again.of(Notification)] == [(kept + 1, "While you were away")]
    assert again.of(OrderUpdate) == [] and b.feed_seq == kept + 1


async def test_tokens_refreshed_through_rest(gigwire: Gigwire, parties: Parties) -> None:
    """A refused token (4401) makes the client ask its provider for a fresh one; a refresh token
    refused by the server stops the client with AuthError."""
    tokens = refreshing(gigwire, 0, "not-a-jwt", parties.doer.refresh)
    renewed: list[Tokens] = []
    tokens.on_tokens = renewed.append
    a = GigwireClient(gigwire.hubs[1].url, tokens, backoff_min_s=0.05)
    async with a:
        await a.wait_connected(15)
        assert a.user_id == parties.doer.user_id
        assert len(renewed) == 1 and tokens.current.refresh_token != parties.doer.refresh
    stale = refreshing(gigwire, 0, "not-a-jwt", parties.doer.refresh)  # already used up: refused
    b = GigwireClient(gigwire.hubs[1].url, stale, backoff_min_s=0.05)
    closed = Recorder(b)
    async with b:
        with pytest.raises(AuthError):
            await b.wait_connected(15)
        await closed.until(lambda: any(e.state == "closed" for e in closed.of(StateChange)))


async def test_outbox_is_bounded_and_fills_while_offline(
    gigwire: Gigwire, parties: Parties, pool: asyncpg.Pool
) -> None:
    """Sends made before any connection wait in the outbox (at most max_queue), then go in order."""
    proxy = await gigwire.proxy(0)
    proxy.target = 1  # nothing listens on port 1: every connect fails until retargeted
    a = GigwireClient(proxy.url, StaticToken(parties.client.token), max_queue=5, backoff_min_s=0.05)
    async with a:
        futures = [a.send_nowait(parties.order_id, f"offline {i}") for i in range(5)]
        with pytest.raises(GigwireError) as full:
            a.send_nowait(parties.order_id, "one too many")
        assert full.value.code == "queue_full"
        await asyncio.sleep(0.3)
        assert not a.connected
        proxy.target = gigwire.port(0)
        acks = await asyncio.wait_for(asyncio.gather(*futures), 30)
    assert [x.seq for x in acks] == [1, 2, 3, 4, 5]
    texts = await pool.fetch("SELECT text FROM messages WHERE order_id = $1 ORDER BY seq", parties.order_id)
    assert [r["text"] for r in texts] == [f"offline {i}" for i in range(5)]


async def publish(gigwire: Gigwire, pool: asyncpg.Pool, body: dict[str, Any]) -> None:
    """POST /api/server/publish with a fresh key of scope publish."""
    from rest import api_keys

    async with pool.acquire() as conn:
        _, key = await api_keys.create(conn, "sdk test", ["publish"])
    async with gigwire.http.post(
        gigwire.hubs[0].url + "/api/server/publish", headers={"X-Api-Key": key}, json=body
    ) as resp:
        assert resp.status == 200, await resp.text()


async def test_notification_published_by_server_api_reaches_sdk(
    gigwire: Gigwire, parties: Parties, pool: asyncpg.Pool
) -> None:
    a = GigwireClient(gigwire.hubs[1].url, StaticToken(parties.client.token))
    seen = Recorder(a)
    async with a:
        await a.wait_connected(10)
        await publish(gigwire, pool, {"orderId": parties.order_id, "title": "Courier picked up the parcel"})
        await seen.until(lambda: len(seen.of(Notification)) == 1)
    note = seen.of(Notification)[0]
    assert note.title == "Courier picked up the parcel" and note.data == {"orderId": parties.order_id}


async def test_a_watched_conversation_list_stays_live_across_a_cut(
    gigwire: Gigwire, parties: Parties
) -> None:
    """watch_conversations(): a chat the client has not subscribed to still reaches its list as
    ConversationUpdated, and the watch is asked for again after the connection is cut."""
    proxy = await gigwire.proxy(0)
    a = GigwireClient(proxy.url, StaticToken(parties.client.token), backoff_min_s=0.1, backoff_max_s=1.0)
    b = GigwireClient(gigwire.hubs[1].url, StaticToken(parties.doer.token))
    seen = Recorder(a)
    async with a, b:
        await a.watch_conversations()  # before connecting: asked for once connected
        await a.wait_connected(10)
        await b.wait_connected(10)
        first = await b.send(parties.order_id, "are you free to talk?")
        await seen.until(lambda: len(seen.of(ConversationUpdated)) == 1)
        (update,) = seen.of(ConversationUpdated)
        assert (update.order_id, update.seq, update.preview) == (
            parties.order_id,
            first.seq,
            "are you free to talk?",
        )
        assert seen.of(ChatMessage) == []  # not subscribed: no chat messages
        connects = len([e for e in seen.of(StateChange) if e.state == "connected"])
        assert proxy.cut() == 1
        await seen.until(lambda: len([e for e in seen.of(StateChange) if e.state == "connected"]) > connects)
        await b.send(parties.order_id, "still there?")
        await seen.until(lambda: len(seen.of(ConversationUpdated)) == 2)
        assert seen.of(ConversationUpdated)[1].preview == "still there?"
        await a.watch_conversations(False)
        last = await b.send(parties.order_id, "never mind")
        await a.subscribe(parties.order_id, since_seq=last.seq - 1)  # a replay marks the point in time
        await seen.until(lambda: any(m.seq == last.seq for m in seen.of(ChatMessage)))
        assert len(seen.of(ConversationUpdated)) == 2
