"""GET /api/conversations end to end: orders and pre-order threads in one list, newest activity
first, with the last message, unread counts from read marks and the other user's summary, cursor
paged; and CONVERSATION_UPDATED keeping it live for watching sessions not subscribed to the chat,
across nodes and transports."""

from __future__ import annotations

import asyncio

import asyncpg
from redis.asyncio import Redis

from hub.keys import HUB
from hub.settings import Settings
from tests.convo.conftest import NodeFactory, Thread, api, new_thread
from tests.factories import make_order
from tests.hub.conftest import Node
from tests.sio.conftest import eventually, sio_connect


async def test_list_orders_and_threads_newest_first_with_unread(
    node: Node, thread: Thread, pool: asyncpg.Pool
) -> None:
    t = thread
    assert (await api(node, "GET", "/api/conversations"))[0] == 401
    status, body = await api(node, "GET", "/api/conversations", t.stranger)
    assert (status, body["data"], body["nextCursor"]) == (200, [], None)
    # A thread without messages is not a conversation yet; an order always is.
    order_id = await make_order(pool, t.owner, t.doer)  # type: ignore[arg-type]
    status, body = await api(node, "GET", "/api/conversations", t.doer)
    assert [(c["id"], c["kind"], c["lastMessage"]) for c in body["data"]] == [(order_id, "order", None)]

    doer = await node.connect(t.doer)
    owner = await node.connect(t.owner)
    await doer.ack("CHAT_MESSAGE", {"orderId": t.app_id, "text": "q1"})
    second = await doer.ack("CHAT_MESSAGE", {"orderId": t.app_id, "text": "q2"})
    status, body = await api(node, "GET", "/api/conversations", t.owner)
    assert status == 200
    first, other = body["data"]
    assert (first["id"], first["kind"], first["orderId"], first["applicationId"]) == (
        t.app_id, "application", None, t.app_id,
    )  # fmt: skip
    assert (first["status"], first["unread"], first["lastSeq"], first["lastReadSeq"]) == ("pending", 2, 2, 0)
    assert first["other"] == {"id": t.doer.id, "name": "Applicant", "avatarUrl": None}
    assert (first["lastMessage"]["text"], first["lastMessage"]["id"]) == ("q2", second["id"])
    assert first["lastActivityAt"] == first["lastMessage"]["createdAt"]
    assert (first["gigId"], first["blocked"]) == (t.gig_id, False)
    assert other["id"] == order_id and other["other"]["name"] == "Applicant"
    # The sender has nothing unread; the reader's mark clears it.
    mine = (await api(node, "GET", "/api/conversations", t.doer))[1]["data"][0]
    assert (mine["id"], mine["unread"], mine["other"]["avatarUrl"]) == (
        t.app_id,
        0,
        "https://cdn.example/o.png",
    )
    await owner.ack("MESSAGE_READ", {"messageId": second["id"]})
    first = (await api(node, "GET", "/api/conversations", t.owner))[1]["data"][0]
    assert (first["unread"], first["lastReadSeq"]) == (0, 2)

    # A message in the order's chat moves it to the top.
    await owner.ack("CHAT_MESSAGE", {"orderId": order_id, "text": "hello"})
    ids = [c["id"] for c in (await api(node, "GET", "/api/conversations", t.doer))[1]["data"]]
    assert ids == [order_id, t.app_id]


async def test_cursor_pages_every_conversation_once(
    node: Node, pool: asyncpg.Pool, settings: Settings
) -> None:
    t = await new_thread(node, pool, settings)
    orders = [await make_order(pool, t.owner, t.doer) for _ in range(4)]  # type: ignore[arg-type]
    seen: list[str] = []
    cursor = None
    while True:
        path = "/api/conversations?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, body = await api(node, "GET", path, t.owner)
        assert status == 200 and len(body["data"]) <= 2
        seen += [c["id"] for c in body["data"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(orders) and len(seen) == 4
    for bad in ("garbage!", "bm90LWEtY3Vyc29y", "x" * 300):
        status, body = await api(node, "GET", f"/api/conversations?cursor={bad}", t.owner)
        assert (status, body["error"]["code"]) == (400, "bad_request"), bad
    status, _ = await api(node, "GET", "/api/conversations?limit=0", t.owner)
    assert status == 400


async def test_conversation_updated_reaches_watching_sessions_not_subscribed(
    make_node: NodeFactory, node: Node, thread: Thread
) -> None:
    t = thread
    node_b = await make_node()
    for hub in (node.app[HUB], node_b.app[HUB]):
        hub.watchers.unsure_until = 0.0  # as if running for long: only announced watchers get signals
    doer = await node.connect(t.doer, subscribe=t.app_id)
    owner_list = await sio_connect(node_b, t.owner)  # a list screen: watching, not in the chat
    assert await owner_list.call("WATCH_CONVERSATIONS", {}) == {"watching": True}
    owner_chat = await node_b.connect(t.owner, subscribe=t.app_id)  # a chat screen: subscribed
    assert (await owner_chat.ack("WATCH_CONVERSATIONS", {}))["watching"] is True
    owner_idle = await node.connect(t.owner)  # never asked
    doer_other = await node_b.connect(t.doer)
    await doer_other.ack("WATCH_CONVERSATIONS", {"enabled": None})  # null counts as absent: true
    watchers = node.app[HUB].watchers  # the sender's process hears both watches announced
    await eventually(lambda: watchers.wanted(t.owner.id) and watchers.wanted(t.doer.id))

    attachment = {"url": "https://f.example/a.png"}
    sent = await doer.ack(
        "CHAT_MESSAGE", {"orderId": t.app_id, "text": "x" * 200, "attachments": [attachment]}
    )
    signal = await owner_list.expect("CONVERSATION_UPDATED")
    assert signal == {
        "orderId": t.app_id, "messageId": sent["id"], "seq": 1, "senderId": t.doer.id,
        "preview": "x" * 140, "attachments": 1, "createdAt": sent["createdAt"],
    }  # fmt: skip
    assert (await doer_other.expect("CONVERSATION_UPDATED"))["data"]["messageId"] == sent[
        "id"
    ]  # the sender's other device
    frame = await owner_chat.expect("CHAT_MESSAGE")  # the subscribed session gets the message only
    assert frame["data"]["id"] == sent["id"]
    assert [f["type"] for f in await owner_chat.quiet(0.3)] == []
    assert await owner_idle.quiet(0.1) == []
    assert [f["type"] for f in doer.skipped + await doer.quiet(0.1)] == ["CHAT_MESSAGE"]

    # Unwatching stops it.
    assert await owner_list.call("WATCH_CONVERSATIONS", {"enabled": False}) == {"watching": False}
    await doer.ack("CHAT_MESSAGE", {"orderId": t.app_id, "text": "again"})
    assert await doer_other.expect("CONVERSATION_UPDATED")
    assert await owner_list.quiet(0.3) == []
    await owner_list.close()


async def test_a_process_listens_to_convo_only_while_a_session_watches(node: Node, thread: Thread) -> None:
    hub = node.app[HUB]
    channel = f"convo:{thread.owner.id}"
    first = await node.connect(thread.owner)
    second = await node.connect(thread.owner)
    await first.ack("WATCH_CONVERSATIONS", {})
    await first.ack("WATCH_CONVERSATIONS", {})  # again: still one reference
    await second.ack("WATCH_CONVERSATIONS", {"enabled": True})
    assert hub._refs.get(channel) == 2
    await second.ack("WATCH_CONVERSATIONS", {"enabled": False})
    assert hub._refs.get(channel) == 1
    await first.ws.close()
    for _ in range(100):
        if channel not in hub._refs:
            break
        await asyncio.sleep(0.02)
    assert channel not in hub._refs  # the watching session left: so did the process


async def test_no_signal_is_published_for_a_user_nobody_watches(
    make_node: NodeFactory, node: Node, thread: Thread, settings: Settings
) -> None:
    t = thread
    node_b = await make_node()
    for hub in (node.app[HUB], node_b.app[HUB]):
        hub.watchers.unsure_until = 0.0
    spy = Redis.from_url(settings.redis_url or "")
    pubsub = spy.pubsub()
    await pubsub.subscribe(
        f"{settings.redis_prefix}convo:{t.owner.id}", f"{settings.redis_prefix}convo:{t.doer.id}"
    )

    async def published(within: float) -> list[bytes]:
        got = []
        deadline = asyncio.get_running_loop().time() + within
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
            if msg is not None:
                got.append(msg["data"])
        return got

    doer = await node.connect(t.doer)
    await doer.ack("CHAT_MESSAGE", {"orderId": t.app_id, "text": "nobody watches"})
    assert await published(0.5) == []  # not even published: no process announced a watcher
    owner = await sio_connect(node_b, t.owner)
    await owner.call("WATCH_CONVERSATIONS")
    await eventually(lambda: node.app[HUB].watchers.wanted(t.owner.id))
    assert not node.app[HUB].watchers.wanted(t.doer.id)
    sent = await doer.ack("CHAT_MESSAGE", {"orderId": t.app_id, "text": "now someone does"})
    assert (await owner.expect("CONVERSATION_UPDATED"))["messageId"] == sent["id"]
    assert len(await published(0.3)) == 1  # the owner's signal only
    await pubsub.aclose()
    await spy.aclose()
    await owner.close()
