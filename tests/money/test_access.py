"""Who may call the money routes (anonymous 401, non-participant 404, wrong role 403), Idempotency-Key
semantics, and bad input: each gets its error and changes nothing."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from domain import ledger
from tests.money.conftest import FakeRazorpay, Parties, act, checkout, idem, new_order, paid_order, webhook


async def _snapshot(pool: asyncpg.Pool) -> tuple[Any, ...]:
    return (
        await pool.fetch("SELECT * FROM orders ORDER BY id"),
        await pool.fetchval("SELECT count(*) FROM ledger_transfers"),
        await pool.fetchval("SELECT count(*) FROM withdrawals"),
        await pool.fetch("SELECT * FROM bank_accounts ORDER BY id"),
    )


async def test_authorization_matrix(api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties) -> None:
    p = parties
    order_id = await paid_order(api, pool, p.client, p.doer)
    pending_id = await new_order(pool, p.client, p.doer)
    r = await api.post(
        "/api/bank-accounts",
        json={"holderName": "C", "ifsc": "HDFC0000001", "accountNumber": "5555666677"},
        headers=idem(p.client),
    )
    bank_id = (await r.json())["data"]["id"]
    deliver = {"deliverables": [{"url": "https://f.example/a"}]}
    # (method, path, body, who, expected status)
    cases: list[tuple[str, str, dict[str, Any] | None, str, int]] = [
        ("GET", "/api/orders", None, "anonymous", 401),
        ("GET", f"/api/orders/{order_id}", None, "anonymous", 401),
        ("GET", f"/api/orders/{order_id}", None, "stranger", 404),
        ("POST", f"/api/orders/{order_id}/submit", deliver, "anonymous", 401),
        ("POST", f"/api/orders/{order_id}/submit", deliver, "stranger", 404),
        ("POST", f"/api/orders/{order_id}/submit", deliver, "client", 403),
        ("POST", f"/api/orders/{order_id}/request-revision", {"reason": "x"}, "doer", 403),
        ("POST", f"/api/orders/{order_id}/request-revision", {"reason": "x"}, "stranger", 404),
        ("POST", f"/api/orders/{order_id}/approve", None, "doer", 403),
        ("POST", f"/api/orders/{order_id}/approve", None, "stranger", 404),
        ("POST", f"/api/orders/{order_id}/cancel", None, "stranger", 404),
        ("POST", f"/api/orders/{order_id}/dispute", {"reason": "x"}, "stranger", 404),
        ("POST", f"/api/orders/{order_id}/resolve", {"outcome": "release"}, "client", 403),
        ("POST", f"/api/orders/{order_id}/resolve", {"outcome": "refund"}, "doer", 403),
        ("POST", f"/api/orders/{order_id}/resolve", {"outcome": "refund"}, "stranger", 404),
        ("POST", "/api/payments/create-order", {"orderId": pending_id}, "anonymous", 401),
        ("POST", "/api/payments/create-order", {"orderId": pending_id}, "stranger", 404),
        ("POST", "/api/payments/create-order", {"orderId": pending_id}, "doer", 403),
        ("GET", "/api/wallet/balance", None, "anonymous", 401),
        ("GET", "/api/wallet/transactions", None, "anonymous", 401),
        ("POST", "/api/wallet/withdraw", {"amount": 1, "bankAccountId": bank_id}, "anonymous", 401),
        ("POST", "/api/wallet/withdraw", {"amount": 1, "bankAccountId": bank_id}, "stranger", 404),
        ("GET", "/api/bank-accounts", None, "anonymous", 401),
        ("POST", "/api/bank-accounts", {"holderName": "x"}, "anonymous", 401),
        ("DELETE", f"/api/bank-accounts/{bank_id}", None, "stranger", 404),
        ("POST", f"/api/bank-accounts/{bank_id}/verify", None, "stranger", 404),
        ("POST", f"/api/bank-accounts/{bank_id}/verify", None, "anonymous", 401),
        ("POST", "/api/dev/sandbox/checkout", {"gatewayOrderId": "order_x"}, "client", 404),  # razorpay mode
    ]  # fmt: skip
    users = {"client": p.client, "doer": p.doer, "stranger": p.stranger}
    before = await _snapshot(pool)
    for method, path, body, who, expected in cases:
        headers = {"Idempotency-Key": secrets.token_hex(6)}
        if who != "anonymous":
            headers.update(users[who].headers)
        r = await api.request(method, path, json=body, headers=headers)
        data = await r.json()
        assert r.status == expected, f"{method} {path} as {who}: {r.status} {data}"
        assert data["success"] is False
    assert await _snapshot(pool) == before
    r = await api.get(f"/api/orders/{order_id}", headers=p.admin.headers)  # admins see any order
    assert r.status == 200


async def test_verify_with_a_bad_signature_or_someone_elses_order_changes_nothing(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties
) -> None:
    order_id = await new_order(pool, parties.client, parties.doer)
    paid = await checkout(api, parties.client, order_id)
    before = await _snapshot(pool)
    forged = {**paid, "razorpay_signature": "0" * 64}
    r = await api.post("/api/payments/verify", json=forged, headers=idem(parties.client))
    assert r.status == 400
    # A signature valid for another payment id does not fund this one.
    r = await api.post(
        "/api/payments/verify",
        json={**paid, "razorpay_payment_id": "pay_other"},
        headers=idem(parties.client),
    )
    assert r.status == 400
    r = await api.post("/api/payments/verify", json=paid, headers=idem(parties.stranger))
    assert r.status == 404
    r = await api.post("/api/payments/verify", json={"razorpay_order_id": "x"}, headers=idem(parties.client))
    assert r.status == 400
    assert set((await r.json())["error"]["details"]["fields"]) == {
        "razorpay_payment_id",
        "razorpay_signature",
    }
    assert await _snapshot(pool) == before


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("submit", {}),
        ("submit", {"deliverables": []}),
        ("submit", {"deliverables": [{"url": "ftp://x"}]}),
        ("submit", {"deliverables": [{"url": "https://x", "extra": 1}]}),
        ("request-revision", {"reason": "  "}),
        ("dispute", {}),
        ("resolve", {"outcome": "split"}),
        ("approve", {"surprise": True}),
    ],
)
async def test_bad_action_bodies_get_400_and_change_nothing(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, action: str, body: dict[str, Any]
) -> None:
    order_id = await paid_order(api, pool, parties.client, parties.doer)
    before = await _snapshot(pool)
    user = parties.admin if action == "resolve" else parties.doer
    status, data = await act(api, user, order_id, action, body)
    assert status == 400, data
    assert data["error"]["details"]["fields"]
    assert await _snapshot(pool) == before


async def test_webhook_signature_and_unknown_events(api: TestClient[Any, Any], pool: asyncpg.Pool) -> None:
    # Earlier tests of this run record their own events: count the rows, not the table.
    before = await pool.fetchval("SELECT count(*) FROM gateway_events")
    body, headers = webhook("payment.captured", "payment", {"id": "pay_x", "order_id": "order_x"})
    r = await api.post(
        "/api/webhooks/payment", data=body, headers={**headers, "X-Razorpay-Signature": "ab" * 32}
    )
    assert r.status == 400
    r = await api.post("/api/webhooks/payment", data=body)
    assert r.status == 400
    assert await pool.fetchval("SELECT count(*) FROM gateway_events") == before
    body, headers = webhook("subscription.charged", "subscription", {"id": "sub_1"})
    r = await api.post("/api/webhooks/payment", data=body, headers=headers)
    assert (r.status, (await r.json())["data"]["outcome"]) == (200, "ignored")
    body, headers = webhook("payment.captured", "payment", {"id": "pay_x", "order_id": "order_nobody"})
    r = await api.post("/api/webhooks/payment", data=body, headers=headers)
    assert (r.status, (await r.json())["data"]["outcome"]) == (200, "unknown_order")


async def test_idempotency_key_replays_refuses_a_different_body_and_a_concurrent_repeat(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    c = parties.client
    order_id = await new_order(pool, c, parties.doer)
    key = idem(c)
    first = await api.post("/api/payments/create-order", json={"orderId": order_id}, headers=key)
    again = await api.post("/api/payments/create-order", json={"orderId": order_id}, headers=key)
    assert first.status == again.status == 200
    assert await first.read() == await again.read()
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = await new_order(pool, c, parties.doer)
    r = await api.post("/api/payments/create-order", json={"orderId": other}, headers=key)
    assert r.status == 422
    assert len([call for call in razorpay.calls if call[1] == "/v1/orders"]) == 1

    # A repeat while the first is still running (held inside the gateway call) gets 409.
    razorpay.hold, razorpay.hold_path = asyncio.Event(), "/v1/orders"
    key = idem(c)
    running = asyncio.ensure_future(
        api.post("/api/payments/create-order", json={"orderId": other}, headers=key)
    )
    await asyncio.wait_for(razorpay.entered.wait(), 10)
    r = await api.post("/api/payments/create-order", json={"orderId": other}, headers=key)
    assert r.status == 409
    razorpay.hold.set()
    assert (await running).status == 200

    # Withdraw insists on a key.
    r = await api.post(
        "/api/wallet/withdraw", json={"amount": 1, "bankAccountId": order_id}, headers=c.headers
    )
    assert r.status == 400


async def test_withdraw_refusals_change_nothing(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    d = parties.doer
    razorpay.validation_active = False
    r = await api.post(
        "/api/bank-accounts",
        json={"holderName": "D", "ifsc": "HDFC0000001", "accountNumber": "1234567890"},
        headers=idem(d),
    )
    bank_id = (await r.json())["data"]["id"]
    r = await api.post(f"/api/bank-accounts/{bank_id}/verify", headers=idem(d))
    assert (await r.json())["data"]["status"] == "failed"
    before = await _snapshot(pool)
    r = await api.post("/api/wallet/withdraw", json={"amount": 1, "bankAccountId": bank_id}, headers=idem(d))
    assert r.status == 409  # not verified
    for bad in (
        {"amount": 0, "bankAccountId": bank_id},
        {"amount": 1.5, "bankAccountId": bank_id},
        {"amount": 1},
    ):
        r = await api.post("/api/wallet/withdraw", json=bad, headers=idem(d))
        assert r.status == 400
    r = await api.post(
        "/api/bank-accounts", json={"holderName": "D", "ifsc": "bad", "accountNumber": "12"}, headers=idem(d)
    )
    assert r.status == 400
    assert await _snapshot(pool) == before
    assert await ledger.balance(pool, ledger.wallet_account(d.id, "INR")) == 0


async def test_list_orders_filters_and_pages(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties
) -> None:
    p = parties
    mine = [await new_order(pool, p.client, p.doer) for _ in range(3)]
    await paid_order(api, pool, p.doer, p.client)  # roles swapped: p.client is the doer here
    r = await api.get("/api/orders?role=client&limit=2", headers=p.client.headers)
    body = await r.json()
    assert (body["total"], len(body["data"]), body["page"]) == (3, 2, 1)
    r = await api.get("/api/orders?role=client&limit=2&page=2", headers=p.client.headers)
    assert [o["id"] for o in (await r.json())["data"]] == [mine[0]]
    r = await api.get("/api/orders?status=in_progress", headers=p.client.headers)
    assert [o["doerId"] for o in (await r.json())["data"]] == [p.client.id]
    r = await api.get("/api/orders?status=nonsense", headers=p.client.headers)
    assert r.status == 400
    r = await api.get("/api/orders", headers=p.stranger.headers)
    assert (await r.json())["total"] == 0
