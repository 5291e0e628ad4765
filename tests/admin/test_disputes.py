"""The disputes queue over REST against the fake Razorpay: the list (open first), the detail with
chat and history, and resolving by split with an exact ledger; two admins resolving at once:
exactly one wins and the gateway is asked for one refund."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from domain import ledger
from hub.settings import Settings
from tests.factories import make_user
from tests.money.conftest import (
    FakeRazorpay,
    Parties,
    act,
    api,
    money_settings,
    paid_order,
    parties,
    razorpay,
)

__all__ = ["api", "money_settings", "parties", "razorpay"]  # the money tests' fixtures, used here too


async def _disputed(api: TestClient[Any, Any], pool: asyncpg.Pool, p: Parties) -> str:
    order_id = await paid_order(api, pool, p.client, p.doer)
    status, body = await act(api, p.doer, order_id, "dispute", {"reason": "not paid for extra work"})
    assert status == 200, body
    return order_id


async def test_queue_and_detail(api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties) -> None:
    order_id = await _disputed(api, pool, parties)
    await pool.execute("INSERT INTO chat_sequences (order_id, last_seq) VALUES ($1, 1)", order_id)
    await pool.execute(
        "INSERT INTO messages (order_id, seq, sender_id, text) VALUES ($1, 1, $2, 'where is it')",
        order_id,
        parties.client.id,
    )
    r = await api.get("/api/admin/disputes?limit=200", headers=parties.admin.headers)
    body = await r.json()
    assert r.status == 200, body
    assert order_id in [o["id"] for o in body["data"]]
    assert all(o["status"] == "disputed" for o in body["data"])
    r = await api.get(f"/api/admin/disputes/{order_id}", headers=parties.admin.headers)
    detail = (await r.json())["data"]
    assert detail["order"]["dispute"]["reason"] == "not paid for extra work"
    assert [m["text"] for m in detail["messages"]] == ["where is it"] and detail["messagesTotal"] == 1
    assert [e["action"] for e in detail["events"]] == ["open", "fund", "dispute"]
    other = await paid_order(api, pool, parties.client, parties.doer)
    r = await api.get(f"/api/admin/disputes/{other}", headers=parties.admin.headers)
    assert r.status == 404  # never disputed


async def test_split_is_exact(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    order_id = await _disputed(api, pool, parties)
    wallet = ledger.wallet_account(parties.doer.id, "INR")
    revenue = ledger.platform_account("revenue", "INR")
    doer_before, revenue_before = await ledger.balance(pool, wallet), await ledger.balance(pool, revenue)
    r = await api.post(
        f"/api/admin/disputes/{order_id}/resolve",
        json={"outcome": "split", "doerAmount": 40_000, "note": "half done"},
        headers=parties.admin.headers,
    )
    body = await r.json()
    assert r.status == 200, body
    order = body["data"]
    assert order["status"] == "completed" and order["escrowState"] == "released"
    assert order["dispute"]["outcome"] == "split"
    assert (order["dispute"]["doerAmount"], order["dispute"]["refundAmount"]) == (40_000, 60_000)
    # Fee 10% of the order: 4,000 of the doer's 40,000 share; 60,000 refunded through the gateway.
    assert await ledger.balance(pool, ledger.escrow_account(order_id)) == 0
    assert await ledger.balance(pool, wallet) - doer_before == 36_000
    assert await ledger.balance(pool, revenue) - revenue_before == 4_000
    refunds = [c for c in razorpay.calls if c[0] == "POST" and c[1].endswith("/refund")]
    assert [c[2]["amount"] for c in refunds] == [60_000]
    assert await pool.fetchval("SELECT amount FROM gateway_refunds WHERE order_id = $1", order_id) == 60_000
    audit = await pool.fetchrow("SELECT * FROM admin_audit WHERE target_id = $1", order_id)
    assert audit["action"] == "order.resolve_dispute" and audit["reason"] == "half done"
    assert audit["before"] == {"status": "disputed", "escrowState": "funded"}
    assert audit["after"]["doerAmount"] == 40_000 and audit["after"]["status"] == "completed"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"outcome": "split"}, 400),
        ({"outcome": "release", "doerAmount": 5}, 400),
        ({"outcome": "split", "doerAmount": 0}, 400),
        ({"outcome": "split", "doerAmount": 100_000}, 422),
        ({"outcome": "halve"}, 400),
    ],
)
async def test_bad_resolutions_change_nothing(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, body: dict[str, Any], status: int
) -> None:
    order_id = await _disputed(api, pool, parties)
    r = await api.post(f"/api/admin/disputes/{order_id}/resolve", json=body, headers=parties.admin.headers)
    assert r.status == status, await r.text()
    assert await pool.fetchval("SELECT status FROM orders WHERE id = $1", order_id) == "disputed"
    assert await ledger.balance(pool, ledger.escrow_account(order_id)) == 100_000
    assert await pool.fetchval("SELECT count(*) FROM admin_audit WHERE target_id = $1", order_id) == 0


async def test_two_admins_at_once_one_wins(
    api: TestClient[Any, Any],
    pool: asyncpg.Pool,
    parties: Parties,
    razorpay: FakeRazorpay,
    money_settings: Settings,
) -> None:
    second = await make_user(pool, money_settings, roles=("client", "admin"))
    for first_body, second_body in (
        ({"outcome": "split", "doerAmount": 30_000}, {"outcome": "refund"}),
        ({"outcome": "release"}, {"outcome": "split", "doerAmount": 70_000}),
    ):
        order_id = await _disputed(api, pool, parties)
        calls = len(razorpay.calls)
        results = await asyncio.gather(
            api.post(
                f"/api/admin/disputes/{order_id}/resolve", json=first_body, headers=parties.admin.headers
            ),
            api.post(f"/api/admin/disputes/{order_id}/resolve", json=second_body, headers=second.headers),
        )
        assert sorted(r.status for r in results) == [200, 409], [await r.text() for r in results]
        assert await ledger.balance(pool, ledger.escrow_account(order_id)) == 0
        refund_calls = [c for c in razorpay.calls[calls:] if c[0] == "POST" and c[1].endswith("/refund")]
        assert len(refund_calls) <= 1
        assert await pool.fetchval("SELECT count(*) FROM admin_audit WHERE target_id = $1", order_id) == 1
        assert await pool.fetchval(
            "SELECT count(*) FROM gateway_refunds WHERE order_id = $1", order_id
        ) == len(refund_calls)
