"""Blocks over REST and their effect end to end: applying is refused with 403 reason `blocked`,
a pre-order CHAT_MESSAGE with ERROR forbidden (nothing stored), either direction; an order's chat
keeps working; a block racing sends and applications leaves nothing stored after its answer."""

from __future__ import annotations

import asyncio

import asyncpg

from hub.settings import Settings
from tests.convo.conftest import Thread, api
from tests.factories import make_order, make_user
from tests.hub.conftest import Node
from tests.market.conftest import create_gig


async def test_block_routes_authorization_and_shape(node: Node, thread: Thread) -> None:
    t = thread
    path = f"/api/users/{t.doer.id}/block"
    assert (await api(node, "POST", path))[0] == 401
    assert (await api(node, "DELETE", path))[0] == 401
    assert (await api(node, "GET", "/api/users/me/blocks"))[0] == 401
    status, body = await api(node, "POST", f"/api/users/{t.owner.id}/block", t.owner)
    assert (status, body["error"]["code"]) == (400, "bad_request")
    status, body = await api(node, "POST", "/api/users/00000000-0000-4000-8000-000000000000/block", t.owner)
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert (await api(node, "POST", "/api/users/not-a-uuid/block", t.owner))[0] == 404

    status, body = await api(node, "POST", path, t.owner)
    assert status == 201, body
    assert (body["data"]["userId"], body["data"]["name"]) == (t.doer.id, "Applicant")
    assert (await api(node, "POST", path, t.owner))[0] == 200  # idempotent
    status, body = await api(node, "GET", "/api/users/me/blocks", t.owner)
    assert status == 200 and [b["userId"] for b in body["data"]] == [t.doer.id] and body["total"] == 1
    status, body = await api(node, "GET", "/api/users/me/blocks", t.doer)
    assert body["data"] == []  # the blocked user does not see who blocks them
    # Only the blocker lifts their own block: the blocked user's DELETE removes nothing.
    status, body = await api(node, "DELETE", f"/api/users/{t.owner.id}/block", t.doer)
    assert (status, body["data"]["deleted"]) == (200, False)
    status, body = await api(node, "DELETE", path, t.owner)
    assert (status, body["data"]) == (200, {"userId": t.doer.id, "deleted": True})
    assert (await api(node, "GET", "/api/users/me/blocks", t.owner))[1]["data"] == []


async def test_apply_is_refused_either_way(node: Node, pool: asyncpg.Pool, settings: Settings) -> None:
    owner = await make_user(pool, settings)
    doer = await make_user(pool, settings)
    for blocker, blocked in ((owner, doer), (doer, owner)):
        gig = await create_gig(node.client, owner)
        assert (await api(node, "POST", f"/api/users/{blocked.id}/block", blocker))[0] == 201
        status, body = await api(
            node, "POST", f"/api/gigs/{gig['id']}/applications", doer,
            json={"proposal": "Me, please.", "bidAmount": 90_000},
        )  # fmt: skip
        assert (status, body["error"]["code"], body["error"]["details"]) == (
            403,
            "forbidden",
            {"reason": "blocked"},
        )
        assert await pool.fetchval("SELECT count(*) FROM applications WHERE gig_id = $1", gig["id"]) == 0
        assert await pool.fetchval("SELECT applications_count FROM gigs WHERE id = $1", gig["id"]) == 0
        assert (await api(node, "DELETE", f"/api/users/{blocked.id}/block", blocker))[0] == 200
        status, _ = await api(
            node, "POST", f"/api/gigs/{gig['id']}/applications", doer,
            json={"proposal": "Me, please.", "bidAmount": 90_000},
        )  # fmt: skip
        assert status == 201


async def test_pre_order_messages_refused_either_way_order_chat_kept(
    node: Node, thread: Thread, pool: asyncpg.Pool
) -> None:
    t = thread
    doer = await node.connect(t.doer, subscribe=t.app_id)
    owner = await node.connect(t.owner, subscribe=t.app_id)
    await doer.ack("CHAT_MESSAGE", {"orderId": t.app_id, "text": "Before the block"})
    for blocker, blocked in ((t.owner, t.doer), (t.doer, t.owner)):
        assert (await api(node, "POST", f"/api/users/{blocked.id}/block", blocker))[0] == 201
        for conn in (doer, owner):
            frame = await conn.request("CHAT_MESSAGE", {"orderId": t.app_id, "text": "blocked?"})
            assert (frame["type"], frame["data"]["code"]) == ("ERROR", "forbidden"), frame
        assert (await api(node, "DELETE", f"/api/users/{blocked.id}/block", blocker))[0] == 200
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE order_id = $1", t.app_id) == 1
    # History stays readable, and the thread carries the flag in the conversation list.
    assert (await api(node, "POST", f"/api/users/{t.doer.id}/block", t.owner))[0] == 201
    ack = await owner.ack("SUBSCRIBE_CHAT", {"orderId": t.app_id, "sinceSeq": 0})
    assert ack["lastSeq"] == 1
    _, body = await api(node, "GET", "/api/conversations", t.doer)
    assert [(c["id"], c["blocked"]) for c in body["data"]] == [(t.app_id, True)]

    # An order's chat keeps working under a block: money is at stake.
    order_id = await make_order(pool, t.owner, t.doer)  # type: ignore[arg-type]
    sub = await doer.ack("SUBSCRIBE_CHAT", {"orderId": order_id})
    assert sub["lastSeq"] == 0
    sent = await doer.ack("CHAT_MESSAGE", {"orderId": order_id, "text": "Delivered."})
    assert sent["seq"] == 1


async def test_block_racing_sends_stores_nothing_it_refused(
    node: Node, thread: Thread, pool: asyncpg.Pool
) -> None:
    t = thread
    conns = [await node.connect(t.doer, subscribe=t.app_id) for _ in range(4)]
    late = await node.connect(t.doer)

    async def send_many(conn: object, n: int) -> list[dict[str, object]]:
        out = []
        for i in range(n):
            out.append(await conn.request("CHAT_MESSAGE", {"orderId": t.app_id, "text": f"m{i}"}))  # type: ignore[attr-defined]
        return out

    sends = [asyncio.create_task(send_many(c, 15)) for c in conns]
    await asyncio.sleep(0.05)
    status, _ = await api(node, "POST", f"/api/users/{t.doer.id}/block", t.owner)
    assert status == 201
    after = await late.request("CHAT_MESSAGE", {"orderId": t.app_id, "text": "after"})
    assert after["type"] == "ERROR"
    answers = [f for task in sends for f in await task]
    acked = {f["data"]["id"] for f in answers if f["type"] == "ACK"}
    refused = [f for f in answers if f["type"] == "ERROR"]
    assert acked and refused and {f["data"]["code"] for f in refused} <= {"forbidden", "rate_limited"}
    stored = {
        r["id"] for r in await pool.fetch("SELECT id::text FROM messages WHERE order_id = $1", t.app_id)
    }
    assert stored == acked  # every ACK stored, every refusal not
    seqs = [
        r["seq"]
        for r in await pool.fetch("SELECT seq FROM messages WHERE order_id = $1 ORDER BY seq", t.app_id)
    ]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_block_racing_an_application(node: Node, pool: asyncpg.Pool, settings: Settings) -> None:
    owner = await make_user(pool, settings)
    for _ in range(5):
        doer = await make_user(pool, settings)
        gig = await create_gig(node.client, owner)
        applied, blocked = await asyncio.gather(
            api(node, "POST", f"/api/gigs/{gig['id']}/applications", doer,
                json={"proposal": "Me.", "bidAmount": 90_000}),
            api(node, "POST", f"/api/users/{doer.id}/block", owner),
        )  # fmt: skip
        assert blocked[0] == 201
        count = await pool.fetchval("SELECT count(*) FROM applications WHERE gig_id = $1", gig["id"])
        assert (applied[0], count) in ((201, 1), (403, 0)), applied


async def test_accept_is_refused_under_a_block_either_way(
    node: Node, pool: asyncpg.Pool, settings: Settings
) -> None:
    owner = await make_user(pool, settings)
    doer = await make_user(pool, settings)
    gig = await create_gig(node.client, owner)
    status, body = await api(
        node,
        "POST",
        f"/api/gigs/{gig['id']}/applications",
        doer,
        json={"proposal": "Me.", "bidAmount": 90_000},
    )
    assert status == 201
    app_id = body["data"]["id"]
    for blocker, blocked in ((owner, doer), (doer, owner)):
        assert (await api(node, "POST", f"/api/users/{blocked.id}/block", blocker))[0] == 201
        status, body = await api(node, "POST", f"/api/applications/{app_id}/accept", owner)
        assert (status, body["error"]["details"]) == (403, {"reason": "blocked"})
        assert await pool.fetchval("SELECT count(*) FROM orders WHERE application_id = $1", app_id) == 0
        assert await pool.fetchval("SELECT status FROM applications WHERE id = $1", app_id) == "pending"
        assert (await api(node, "DELETE", f"/api/users/{blocked.id}/block", blocker))[0] == 200
    status, body = await api(node, "POST", f"/api/applications/{app_id}/accept", owner)
    assert status == 200 and body["data"]["order"]["id"] == app_id
