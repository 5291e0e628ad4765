"""Safety reports: any user reports a user, a gig or a message over REST; one open report per
reporter and target; the hourly cap; a message only from a party of its order; admins list and
resolve them, audited."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from rest.reports import REPORTS_PER_HOUR
from tests.admin.conftest import People
from tests.factories import make_order, random_phone


async def test_report_and_resolve(client: TestClient[Any, Any], pool: asyncpg.Pool, people: People) -> None:
    body = {"targetType": "user", "targetId": people.bob.id, "reason": "scam", "details": "asked for UPI"}
    r = await client.post("/api/reports", json=body, headers=people.alice.headers)
    report = (await r.json())["data"]
    assert r.status == 201 and report["status"] == "open" and report["reporterId"] == people.alice.id
    r = await client.post("/api/reports", json=body, headers=people.alice.headers)
    assert r.status == 409
    r = await client.get("/api/admin/reports", headers=people.admin.headers)
    assert report["id"] in [x["id"] for x in (await r.json())["data"]]
    r = await client.post(
        f"/api/admin/reports/{report['id']}/resolve",
        json={"action": "warned", "note": "told off"},
        headers=people.admin.headers,
    )
    resolved = (await r.json())["data"]
    assert r.status == 200 and resolved["status"] == "resolved" and resolved["action"] == "warned"
    r = await client.post(
        f"/api/admin/reports/{report['id']}/resolve", json={"action": "none"}, headers=people.admin.headers
    )
    assert r.status == 409
    audit = await pool.fetch("SELECT * FROM admin_audit WHERE target_id = $1", report["id"])
    assert [(a["action"], a["reason"]) for a in audit] == [("report.resolve", "told off")]
    # Resolved: the same target may be reported again.
    r = await client.post("/api/reports", json=body, headers=people.alice.headers)
    assert r.status == 201


async def test_targets(client: TestClient[Any, Any], pool: asyncpg.Pool, people: People) -> None:
    order_id = await make_order(pool, people.alice, people.bob)
    await pool.execute("INSERT INTO chat_sequences (order_id, last_seq) VALUES ($1, 1)", order_id)
    message_id = await pool.fetchval(
        "INSERT INTO messages (order_id, seq, sender_id, text) VALUES ($1, 1, $2, 'rude') RETURNING id::text",
        order_id, people.bob.id,
    )  # fmt: skip
    gig_id = await pool.fetchval("SELECT gig_id::text FROM orders WHERE id = $1", order_id)
    cases = [
        (people.alice, {"targetType": "message", "targetId": message_id}, 201),
        (people.admin, {"targetType": "message", "targetId": message_id}, 404),  # not a party
        (people.bob, {"targetType": "gig", "targetId": gig_id}, 201),
        (people.bob, {"targetType": "gig", "targetId": str(uuid.uuid4())}, 404),
        (people.bob, {"targetType": "user", "targetId": str(uuid.uuid4())}, 404),
        (people.bob, {"targetType": "user", "targetId": people.bob.id}, 400),
        (people.bob, {"targetType": "order", "targetId": order_id}, 400),
    ]
    for who, target, status in cases:
        r = await client.post("/api/reports", json={**target, "reason": "harassment"}, headers=who.headers)
        assert r.status == status, (target, await r.text())
    r = await client.post("/api/reports", json={"targetType": "gig", "targetId": gig_id, "reason": "scam"})
    assert r.status == 401


async def test_hourly_cap_under_concurrency(
    client: TestClient[Any, Any], pool: asyncpg.Pool, people: People
) -> None:
    insert = "INSERT INTO users (phone) VALUES ($1) RETURNING id::text"
    targets = [await pool.fetchval(insert, random_phone()) for _ in range(REPORTS_PER_HOUR + 5)]
    results = await asyncio.gather(*(
        client.post("/api/reports", json={"targetType": "user", "targetId": t, "reason": "spam"},
                    headers=people.alice.headers)
        for t in targets
    ))  # fmt: skip
    statuses = sorted(r.status for r in results)
    waits = [int(r.headers["Retry-After"]) for r in results if r.status == 429]
    assert all(3500 < w <= 3600 for w in waits), waits
    assert statuses == [201] * REPORTS_PER_HOUR + [429] * 5, statuses
    assert (
        await pool.fetchval("SELECT count(*) FROM reports WHERE reporter_id = $1", people.alice.id)
        == REPORTS_PER_HOUR
    )
