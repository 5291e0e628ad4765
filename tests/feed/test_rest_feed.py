"""GET /api/feed: the caller's feed over REST, paged by sinceSeq and limit, the same events (and
data) a realtime session gets; `expired` once the retention sweep deleted what was asked for."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.feed.conftest import notification, order_update
from tests.hub.conftest import Node, Pair
from workers.housekeeping import Housekeeping
from workers.metrics import WorkerMetrics


async def _get(node: Node, headers: dict[str, str], query: str) -> tuple[int, Any]:
    response = await node.client.get(f"/api/feed{query}", headers=headers)
    return response.status, await response.json()


async def test_pages_by_since_seq_and_limit_then_expires(node: Node, pair: Pair, pool: asyncpg.Pool) -> None:
    user = pair.client
    for i in range(7):
        if i % 2:
            await order_update(pool, pair)
        else:
            await notification(pool, user.id)
    status, body = await _get(node, user.headers, "?limit=3")
    assert status == 200 and body["success"]
    page = body["data"]
    assert page["lastSeq"] == 7 and page["expired"] is False
    assert [i["seq"] for i in page["items"]] == [1, 2, 3]
    assert [i["type"] for i in page["items"]] == ["NOTIFICATION", "ORDER_UPDATE", "NOTIFICATION"]
    second = page["items"][1]
    assert second["data"]["feedSeq"] == 2 and second["data"]["orderId"] == pair.order_id
    assert isinstance(second["createdAt"], int)
    seen = [i["seq"] for i in page["items"]]
    since = seen[-1]
    while True:
        _, body = await _get(node, user.headers, f"?sinceSeq={since}&limit=3")
        items = body["data"]["items"]
        if not items:
            break
        seen += [i["seq"] for i in items]
        since = items[-1]["seq"]
    assert seen == list(range(1, 8))
    # The doer's feed is their own: only the ORDER_UPDATEs, numbered from 1.
    _, body = await _get(node, pair.doer.headers, "")
    assert [(i["seq"], i["type"]) for i in body["data"]["items"]] == [(n, "ORDER_UPDATE") for n in (1, 2, 3)]
    # Past retention: entries 1..4 are swept; asking from before them is `expired`.
    await pool.execute(
        "UPDATE feed SET created_at = now() - interval '8 days' WHERE user_id = $1 AND seq <= 4", user.id
    )
    await Housekeeping(pool, WorkerMetrics()).sweep()
    _, body = await _get(node, user.headers, "?sinceSeq=2")
    assert body["data"] == {"items": [], "lastSeq": 7, "expired": True}
    _, body = await _get(node, user.headers, "?sinceSeq=4")
    assert [i["seq"] for i in body["data"]["items"]] == [5, 6, 7] and body["data"]["expired"] is False
    _, body = await _get(node, user.headers, "?sinceSeq=8")  # ahead of the feed
    assert body["data"]["expired"] is True
    for bad in ("?limit=0", "?limit=201", "?sinceSeq=-1", "?sinceSeq=x"):
        status, body = await _get(node, user.headers, bad)
        assert status == 400 and body["error"]["code"] == "bad_request", bad
    status, _ = await _get(node, {}, "")
    assert status == 401
