"""The server API (/api/server/*) end to end: API keys refused when missing, unknown, revoked or
without the scope; publish delivered live on another node and resumable after reconnect; disconnect
closing a user's sessions on every node; presence and stats for the whole deployment; the per-key
rate limit."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from rest import api_keys
from tests.hub.conftest import Conn
from tests.server_api.conftest import KeyFactory, Node, Pair, key_headers

pytestmark = pytest.mark.usefixtures("relaying")

ROUTES = [
    ("POST", "/api/server/publish", "publish"),
    ("POST", "/api/server/disconnect", "disconnect"),
    ("GET", "/api/server/presence/{user}", "presence"),
    ("GET", "/api/server/stats", "stats"),
]


async def call(
    node: Node, method: str, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, Any]:
    async with node.client.request(method, path, headers=headers, json=body) as resp:
        return resp.status, await resp.json()


async def test_keys_refused_unless_valid_unrevoked_and_scoped(
    nodes: list[Node], pair: Pair, make_key: KeyFactory, pool: asyncpg.Pool
) -> None:
    node = nodes[0]
    full = await make_key("publish", "disconnect", "presence", "stats")
    other = await make_key("stats")
    revoked = await make_key(*api_keys.SCOPES)
    async with pool.acquire() as conn:
        assert await api_keys.revoke(conn, revoked[: api_keys.PREFIX_LEN]) == 1
    body = {"userId": pair.doer.id, "title": "hi"}
    for method, template, scope in ROUTES:
        path = template.format(user=pair.doer.id)
        sent = (body if scope == "publish" else {"userId": pair.doer.id}) if method == "POST" else None
        for headers in (
            {},
            {"Authorization": f"Bearer {pair.client.token}"},  # a user's token is not a key
            key_headers("gw_" + "x" * 43),
            key_headers(revoked),
            key_headers(revoked, "header"),
            {"X-Api-Key": ""},
        ):
            status, answer = await call(node, method, path, headers, sent)
            assert (status, answer["error"]["code"]) == (401, "unauthorized"), (path, headers, answer)
        if scope != "stats":
            status, answer = await call(node, method, path, key_headers(other), sent)
            assert (status, answer["error"]["details"]) == (403, {"scope": scope}), answer
        for style in ("bearer", "header"):
            status, answer = await call(node, method, path, key_headers(full, style), sent)
            assert status == 200, answer
    # Nothing the refused calls asked for happened: two publishes (one per style) only.
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE user_id = $1", pair.doer.id) == 2
    used = await pool.fetchval(
        "SELECT last_used_at FROM api_keys WHERE key_hash = $1", api_keys.key_hash(full)
    )
    assert used is not None


async def test_publish_live_on_another_node_then_resumed(
    nodes: list[Node], pair: Pair, make_key: KeyFactory
) -> None:
    key = await make_key("publish")
    live = await nodes[1].connect(pair.doer)
    status, answer = await call(
        nodes[0], "POST", "/api/server/publish", key_headers(key),
        {"userId": pair.doer.id, "type": "shipping", "title": "Parcel sent", "body": "Tracking 42",
         "data": {"n": 1}},
    )  # fmt: skip
    assert status == 200, answer
    assert answer["data"]["target"] == "user"
    [delivery] = answer["data"]["deliveries"]
    frame = await live.expect("NOTIFICATION", within=10)
    note = frame["data"]
    assert (note["id"], note["type"], note["title"], note["body"], note["data"]) == (
        delivery["notificationId"], "shipping", "Parcel sent", "Tracking 42", {"n": 1}
    )  # fmt: skip
    seen = note["feedSeq"]
    await live.ws.close()
    # Published while the user is away: resumed with sinceFeedSeq on the other node.
    status, _ = await call(
        nodes[1], "POST", "/api/server/publish", key_headers(key), {"userId": pair.doer.id, "title": "Second"}
    )
    assert status == 200
    back = Conn(await nodes[0].client.ws_connect(f"/ws?token={pair.doer.token}&sinceFeedSeq={seen}"))
    await back.expect("AUTHENTICATED")
    again = await back.expect("NOTIFICATION", within=10)
    assert (again["data"]["title"], again["data"]["feedSeq"]) == ("Second", seen + 1)
    assert [f for f in await back.quiet(0.5) if f["type"] == "NOTIFICATION"] == []


async def test_publish_to_an_order_reaches_both_parties(
    nodes: list[Node], pair: Pair, make_key: KeyFactory
) -> None:
    key = await make_key("publish")
    client, doer = await nodes[0].connect(pair.client), await nodes[1].connect(pair.doer)
    status, answer = await call(
        nodes[1], "POST", "/api/server/publish", key_headers(key),
        {"orderId": pair.order_id, "title": "Courier assigned", "data": {"courier": "R. K."}},
    )  # fmt: skip
    assert status == 200, answer
    assert {d["userId"] for d in answer["data"]["deliveries"]} == {pair.client.id, pair.doer.id}
    for conn in (client, doer):
        data = (await conn.expect("NOTIFICATION", within=10))["data"]
        assert data["data"] == {"courier": "R. K.", "orderId": pair.order_id}


async def test_publish_refuses_bad_bodies_and_changes_nothing(
    nodes: list[Node], pair: Pair, make_key: KeyFactory, pool: asyncpg.Pool
) -> None:
    key = await make_key("publish")
    missing = "00000000-0000-4000-8000-000000000000"
    cases: list[tuple[Any, int, str]] = [
        ({"title": "no target"}, 400, "userId"),
        ({"userId": pair.doer.id, "orderId": pair.order_id, "title": "both"}, 400, "userId"),
        ({"userId": pair.doer.id}, 400, "title"),
        ({"userId": pair.doer.id, "title": "   "}, 400, "title"),
        ({"userId": pair.doer.id, "title": "t", "type": "Bad-Type"}, 400, "type"),
        ({"userId": pair.doer.id, "title": "t", "data": {"x": "y" * 5000}}, 400, "data"),
        ({"userId": pair.doer.id, "title": "t", "extra": 1}, 400, "extra"),
        ({"userId": "not-a-uuid", "title": "t"}, 404, ""),
        ({"userId": missing, "title": "t"}, 404, ""),
        ({"orderId": missing, "title": "t"}, 404, ""),
        ([1, 2], 400, ""),
    ]
    for body, status, field in cases:
        got, answer = await call(nodes[0], "POST", "/api/server/publish", key_headers(key), body)
        assert got == status, (body, answer)
        if field:
            assert field in answer["error"]["details"]["fields"], answer
    assert await pool.fetchval("SELECT count(*) FROM feed WHERE user_id = $1", pair.doer.id) == 0


async def test_concurrent_publishes_get_gapless_feed_seqs(
    nodes: list[Node], pair: Pair, make_key: KeyFactory, pool: asyncpg.Pool
) -> None:
    key = await make_key("publish")
    body = {"userId": pair.client.id, "title": "concurrent"}
    results = await asyncio.gather(
        *(call(nodes[i % 2], "POST", "/api/server/publish", key_headers(key), body) for i in range(20))
    )
    assert [status for status, _ in results] == [200] * 20
    seqs = [
        r["seq"]
        for r in await pool.fetch("SELECT seq FROM feed WHERE user_id = $1 ORDER BY seq", pair.client.id)
    ]
    assert seqs == list(range(1, 21))


async def test_disconnect_closes_every_session_on_every_node(
    nodes: list[Node], pair: Pair, make_key: KeyFactory
) -> None:
    key = await make_key("disconnect")
    on_a, on_b = await nodes[0].connect(pair.doer), await nodes[1].connect(pair.doer)
    bystander = await nodes[1].connect(pair.client)
    status, answer = await call(
        nodes[0], "POST", "/api/server/disconnect", key_headers(key), {"userId": pair.doer.id}
    )
    assert status == 200 and answer["data"] == {"userId": pair.doer.id, "reason": "server_disconnect"}
    for conn in (on_a, on_b):
        error = await conn.expect("ERROR", within=10)
        assert error["data"]["code"] == "unauthorized"
        assert "server closed this session" in error["data"]["message"]
        assert await conn.closed() == 4401
    assert (await bystander.ack("SUBSCRIBE_CHAT", {"orderId": pair.order_id}))["orderId"] == pair.order_id
    # The tokens stay good: the user may connect again at once.
    again = await nodes[1].connect(pair.doer)
    await again.ws.close()
    status, answer = await call(
        nodes[0],
        "POST",
        "/api/server/disconnect",
        key_headers(key),
        {"userId": "00000000-0000-4000-8000-000000000000"},
    )
    assert status == 404, answer


async def test_presence_and_stats_span_nodes(nodes: list[Node], pair: Pair, make_key: KeyFactory) -> None:
    key = await make_key("presence", "stats")
    path = f"/api/server/presence/{pair.doer.id}"
    status, answer = await call(nodes[0], "GET", path, key_headers(key))
    assert status == 200 and answer["data"] == {
        "userId": pair.doer.id, "online": False, "sessions": 0, "watchingOrders": []
    }  # fmt: skip
    conn = await nodes[1].connect(pair.doer, subscribe=pair.order_id)
    await nodes[0].connect(pair.doer)
    status, answer = await call(nodes[0], "GET", path, key_headers(key))
    assert answer["data"] == {
        "userId": pair.doer.id,
        "online": True,
        "sessions": 2,
        "watchingOrders": [pair.order_id],
    }
    await conn.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "counted"})
    status, answer = await call(nodes[0], "GET", "/api/server/stats", key_headers(key))
    assert status == 200, answer
    stats = answer["data"]
    assert len(stats["nodes"]) >= 2 and stats["messagesStored"] >= 1
    assert stats["connections"] == sum(n["connections"] for n in stats["nodes"])
    status, answer = await call(nodes[0], "GET", "/api/server/presence/not-a-uuid", key_headers(key))
    assert status == 404


async def test_rate_limited_per_key(make_node: Any, pair: Pair, make_key: KeyFactory) -> None:
    node = await make_node(api_rate_per_key=3)
    first, second = await make_key("stats"), await make_key("stats")
    statuses = [(await call(node, "GET", "/api/server/stats", key_headers(first)))[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    async with node.client.get("/api/server/stats", headers=key_headers(first)) as resp:
        assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
        assert (await resp.json())["error"]["details"]["scope"] == "key"
    assert (await call(node, "GET", "/api/server/stats", key_headers(second)))[0] == 200


async def test_order_publishes_racing_notices_in_the_other_order_never_deadlock(
    nodes: list[Node], pair: Pair, make_key: KeyFactory, pool: asyncpg.Pool
) -> None:
    """Each feed append locks its user's feed row: two transactions that notify both parties must
    lock them in one order. Publishes to the order race transactions that send notices to the same
    two users listed the other way round (domain.notices.send sorts them)."""
    from domain.notices import Notice, send

    key = await make_key("publish")
    body = {"orderId": pair.order_id, "title": "racing"}
    # listed doer first when the client's id sorts first, and the other way round otherwise
    listed = sorted([pair.client.id, pair.doer.id], reverse=True)

    async def notices_other_way() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await send(conn, [Notice(u, "system", "race", "Racing", "the other order", {}) for u in listed])

    async def publish(i: int) -> tuple[int, Any]:
        return await call(nodes[i % 2], "POST", "/api/server/publish", key_headers(key), body)

    outcomes = await asyncio.gather(
        *(publish(i) for i in range(15)), *(notices_other_way() for _ in range(15)), return_exceptions=True
    )
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert not failures, failures
    assert [o[0] for o in outcomes[:15]] == [200] * 15  # type: ignore[index]
    for user in (pair.client.id, pair.doer.id):
        seqs = [
            r["seq"] for r in await pool.fetch("SELECT seq FROM feed WHERE user_id = $1 ORDER BY seq", user)
        ]
        assert seqs == list(range(1, 31)), (user, seqs)


async def test_a_transaction_the_database_rolls_back_is_a_503_that_changed_nothing(
    nodes: list[Node], pair: Pair, make_key: KeyFactory, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rest.server_api

    async def deadlocked(*_args: Any, **_kwargs: Any) -> str:
        raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")

    monkeypatch.setattr(rest.server_api, "notify", deadlocked)
    key = await make_key("publish")
    before = await pool.fetchval("SELECT count(*) FROM feed")
    status, answer = await call(
        nodes[0], "POST", "/api/server/publish", key_headers(key), {"userId": pair.client.id, "title": "x"}
    )
    assert status == 503, answer
    assert answer["success"] is False and answer["error"]["code"] == "unavailable"
    assert "retry" in answer["error"]["message"]
    assert await pool.fetchval("SELECT count(*) FROM feed") == before
