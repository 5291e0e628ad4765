"""Resuming the feed: sinceFeedSeq on both transports (/ws query, AUTHENTICATE frame, Socket.IO
auth) replays what came after it, then live events, with AUTHENTICATED first and carrying the last
feedSeq; after the retention sweep deleted what a client asks for, it gets one FEED_EXPIRED and
then live events from feedSeq."""

from __future__ import annotations

import asyncpg

from hub.settings import Settings
from tests.feed.conftest import notification, relay, sio_session, until, ws_session
from tests.hub.conftest import Conn, Node, Pair
from workers.housekeeping import Housekeeping
from workers.metrics import WorkerMetrics


async def _age(pool: asyncpg.Pool, user_id: str, upto: int) -> None:
    """Make the user's feed entries up to `upto` older than the default retention (7 days)."""
    await pool.execute(
        "UPDATE feed SET created_at = now() - interval '8 days' WHERE user_id = $1 AND seq <= $2",
        user_id,
        upto,
    )


async def test_resume_on_every_transport_replays_after_since_then_live(
    node: Node, pair: Pair, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = pair.client
    for _ in range(5):
        await notification(pool, user.id)
    ws = await ws_session(node, user.token, since=2)
    sio = await sio_session(node, user.token, since=0)
    raw = Conn(await node.client.ws_connect("/ws"))
    hello = await raw.request("AUTHENTICATE", {"token": user.token, "sinceFeedSeq": 4})
    assert hello["type"] == "AUTHENTICATED" and hello["data"]["feedSeq"] == 5
    assert (await raw.expect("NOTIFICATION"))["data"]["feedSeq"] == 5
    fresh = await ws_session(node, user.token)  # no sinceFeedSeq: live only
    async with relay(pool, settings.redis_url or "", settings):
        await notification(pool, user.id)
        await until(lambda: ws.feed_seqs()[-1:] == [6] and sio.feed_seqs()[-1:] == [6])
        await until(lambda: fresh.feed_seqs() == [6])
        assert (await raw.expect("NOTIFICATION"))["data"]["feedSeq"] == 6
    assert ws.events[0] == ("AUTHENTICATED", ws.events[0][1]) and ws.events[0][1]["feedSeq"] == 5
    assert ws.feed_seqs() == [3, 4, 5, 6]
    assert sio.of("AUTHENTICATED")[0]["feedSeq"] == 5 and sio.feed_seqs() == [1, 2, 3, 4, 5, 6]
    assert fresh.of("AUTHENTICATED")[0]["feedSeq"] == 5
    titles = [d["title"] for d in sio.of("NOTIFICATION")]
    assert len(set(titles)) == 6  # six distinct events, each once
    for reader in (ws, sio, fresh):
        await reader.stop()


async def test_expired_resume_gets_feed_expired_then_live(
    node: Node, pair: Pair, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = pair.doer
    for _ in range(5):
        await notification(pool, user.id)
    await _age(pool, user.id, 3)
    deleted = await Housekeeping(pool, WorkerMetrics()).sweep()  # FEED_RETENTION default: 7 days
    assert deleted["feed"] >= 3
    expired_ws = await ws_session(node, user.token, since=1)  # 2 and 3 are gone
    kept_ws = await ws_session(node, user.token, since=3)  # 4 and 5 are kept
    expired_sio = await sio_session(node, user.token, since=0)
    ahead_ws = await ws_session(node, user.token, since=99)  # ahead of the feed: also expired
    async with relay(pool, settings.redis_url or "", settings):
        await notification(pool, user.id)
        readers = (expired_ws, kept_ws, expired_sio, ahead_ws)
        await until(lambda: all(r.feed_seqs()[-1:] == [6] for r in readers))
    assert [t for t, _ in expired_ws.events] == ["AUTHENTICATED", "FEED_EXPIRED", "NOTIFICATION"]
    assert expired_ws.of("FEED_EXPIRED") == [{"sinceFeedSeq": 1, "feedSeq": 5}]
    assert expired_ws.feed_seqs() == [6]
    assert expired_sio.of("FEED_EXPIRED") == [{"sinceFeedSeq": 0, "feedSeq": 5}]
    assert expired_sio.feed_seqs() == [6]
    assert ahead_ws.of("FEED_EXPIRED") == [{"sinceFeedSeq": 99, "feedSeq": 5}]
    assert not kept_ws.of("FEED_EXPIRED") and kept_ws.feed_seqs() == [4, 5, 6]
    for reader in readers:
        await reader.stop()
