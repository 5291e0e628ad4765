"""Issue 12's fault test: two hub processes (`python -m hub`) and a private Redis killed -9 and
started again three times while a publisher commits ORDER_UPDATEs and NOTIFICATIONs
through hub.outbox.enqueue at a steady rate and a relay publishes them. Every event reaches every
session of its user, raw /ws and Socket.IO, in feedSeq order, none twice, without the client
reconnecting; and a client away during the faults resumes with its last feedSeq and misses nothing."""

from __future__ import annotations

import asyncio
import itertools

import asyncpg

from hub.settings import Settings
from tests.feed.conftest import (
    FEED_TYPES,
    HubProcess,
    Reader,
    SioReader,
    WsReader,
    feed_rows,
    notification,
    order_update,
    relay,
    sio_session,
    until,
    ws_session,
)
from tests.hub.conftest import Pair
from tests.services import RedisServer

RATE_S = 0.03  # one commit every 30 ms: ~33 events a second, a third of them for both users
KILLS = 3


async def publisher(pool: asyncpg.Pool, pair: Pair, stop: asyncio.Event) -> int:
    """Commit events at a steady rate until `stop`: ORDER_UPDATEs for both parties and
    NOTIFICATIONs for each in turn. Returns how many were committed."""
    committed = 0
    for i in itertools.count():
        if stop.is_set():
            return committed
        if i % 3 == 0:
            await order_update(pool, pair)
        else:
            await notification(pool, pair.client.id if i % 3 == 1 else pair.doer.id)
        committed += 1
        await asyncio.sleep(RATE_S)
    return committed


async def reconnected(hubs: list[HubProcess], times: int) -> None:
    """Wait until every hub process counted `times` broker reconnects (its /metrics)."""
    async with asyncio.timeout(30):
        while True:
            counts = [await h.metric("gigwire_broker_reconnects_total") for h in hubs]
            if all(c >= times for c in counts):
                return
            await asyncio.sleep(0.1)


async def faults(redis: RedisServer, hubs: list[HubProcess]) -> None:
    """Kill Redis -9 and start it again KILLS times; wait for every hub to resubscribe each time."""
    for n in range(1, KILLS + 1):
        await asyncio.sleep(1.0)
        redis.stop()  # SIGKILL
        await asyncio.sleep(1.0)
        redis.start()
        await reconnected(hubs, n)


def assert_complete(reader: Reader, rows: list[tuple[int, str]], first: int = 1) -> None:
    """The reader got the user's feed from `first`, in order, none twice, of the stored types."""
    got = [(int(d["feedSeq"]), t) for t, d in reader.events if t in FEED_TYPES]
    assert got == [r for r in rows if r[0] >= first], reader.name


async def sessions(a: HubProcess, b: HubProcess, pair: Pair) -> dict[str, Reader]:
    """Each user on both hubs and both transports (crossed, so each hub serves both kinds)."""
    readers: dict[str, Reader] = {
        "client ws@a": await ws_session(a, pair.client.token),
        "client sio@b": await sio_session(b, pair.client.token),
        "doer sio@a": await sio_session(a, pair.doer.token),
        "doer ws@b": await ws_session(b, pair.doer.token),
    }
    for name, reader in readers.items():
        reader.name = name
    await until(lambda: all(r.of("AUTHENTICATED") for r in readers.values()), within=10)
    return readers


def user_of(name: str, pair: Pair) -> str:
    return pair.client.id if name.startswith("client") else pair.doer.id


def still_connected(reader: Reader) -> bool:
    if isinstance(reader, WsReader):
        return not reader.closed.is_set()
    assert isinstance(reader, SioReader)
    return not reader.conn.disconnected.is_set()


async def test_every_event_reaches_every_session_in_order_through_three_redis_kills(
    hub_processes: list[HubProcess],
    pair: Pair,
    pool: asyncpg.Pool,
    settings: Settings,
    redis_server: RedisServer,
) -> None:
    a, b = hub_processes
    readers = await sessions(a, b, pair)
    stop = asyncio.Event()
    async with relay(pool, redis_server.url, settings):
        publishing = asyncio.create_task(publisher(pool, pair, stop))
        await faults(redis_server, hub_processes)
        await asyncio.sleep(1.0)  # events after the last restart, live
        stop.set()
        committed = await publishing
        rows = {u: await feed_rows(pool, u) for u in (pair.client.id, pair.doer.id)}
        for name, reader in readers.items():
            last = rows[user_of(name, pair)][-1][0]
            await until(lambda r=reader, last=last: bool(r.feed_seqs()) and r.feed_seqs()[-1] >= last)
    await asyncio.sleep(0.3)  # anything late (a duplicate) would arrive now
    assert committed > 150
    for name, reader in readers.items():
        assert_complete(reader, rows[user_of(name, pair)])
        assert still_connected(reader), name
        assert len(reader.of("AUTHENTICATED")) == 1, name  # never reconnected
    for reader in readers.values():
        await reader.stop()


async def test_a_client_away_during_the_faults_resumes_with_its_last_feed_seq(
    hub_processes: list[HubProcess],
    pair: Pair,
    pool: asyncpg.Pool,
    settings: Settings,
    redis_server: RedisServer,
) -> None:
    a, b = hub_processes
    readers = await sessions(a, b, pair)
    stop = asyncio.Event()
    async with relay(pool, redis_server.url, settings):
        publishing = asyncio.create_task(publisher(pool, pair, stop))
        await asyncio.sleep(0.7)
        # Two clients go away (one of each transport), with what they saw so far.
        away = {"client ws@a": readers.pop("client ws@a"), "doer sio@a": readers.pop("doer sio@a")}
        for reader in away.values():
            if isinstance(reader, WsReader):
                await reader.conn.ws.close()
            else:
                assert isinstance(reader, SioReader)
                await reader.conn.close()
            await reader.stop()
        await faults(redis_server, hub_processes)
        # Back, each on the other node, with its last feedSeq: on /ws in the query, on Socket.IO in
        # the handshake's auth.
        client_last = away["client ws@a"].feed_seqs()[-1]
        doer_last = away["doer sio@a"].feed_seqs()[-1]
        resumed: dict[str, Reader] = {
            "client ws@b (resumed)": await ws_session(b, pair.client.token, since=client_last),
            "doer sio@b (resumed)": await sio_session(b, pair.doer.token, since=doer_last),
        }
        await asyncio.sleep(1.0)  # live events after the resume
        stop.set()
        await publishing
        rows = {u: await feed_rows(pool, u) for u in (pair.client.id, pair.doer.id)}
        everyone = {**readers, **resumed}
        for name, reader in everyone.items():
            reader.name = name
            last = rows[user_of(name, pair)][-1][0]
            await until(lambda r=reader, last=last: bool(r.feed_seqs()) and r.feed_seqs()[-1] >= last)
    await asyncio.sleep(0.3)
    for name, reader in readers.items():
        assert_complete(reader, rows[user_of(name, pair)])
        assert still_connected(reader), name
    for name, reader in resumed.items():
        since = client_last if name.startswith("client") else doer_last
        hello = reader.of("AUTHENTICATED")
        assert len(hello) == 1 and hello[0]["feedSeq"] >= since
        assert reader.events[0][0] == "AUTHENTICATED"  # first, before the replayed events
        assert not reader.of("FEED_EXPIRED")
        assert_complete(reader, rows[user_of(name, pair)], first=since + 1)
    for name, reader in away.items():  # what each saw before leaving was in order too
        seqs = reader.feed_seqs()
        assert seqs == list(range(1, len(seqs) + 1)), name
    for reader in everyone.values():
        await reader.stop()


async def test_after_a_reconnect_each_hub_refills_its_sessions_from_postgres(
    hub_processes: list[HubProcess], pair: Pair, pool: asyncpg.Pool, redis_server: RedisServer
) -> None:
    """Events committed while Redis is down, with no relay to publish them and no later event to
    reveal the gap: the reconnect alone makes every hub read them from PostgreSQL."""
    a, b = hub_processes
    readers = await sessions(a, b, pair)
    redis_server.stop()
    for _ in range(3):
        await order_update(pool, pair)
        await notification(pool, pair.client.id)
    redis_server.start()
    rows = {u: await feed_rows(pool, u) for u in (pair.client.id, pair.doer.id)}
    for name, reader in readers.items():
        last = rows[user_of(name, pair)][-1][0]
        await until(lambda r=reader, last=last: r.feed_seqs()[-1:] == [last], within=20)
    for name, reader in readers.items():
        assert_complete(reader, rows[user_of(name, pair)])
        assert still_connected(reader), name
        await reader.stop()
