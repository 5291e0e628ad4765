"""The whole money flow over HTTP against the fake Razorpay: pay, deliver, revise, approve, withdraw."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from domain import ledger
from tests.money.conftest import FakeRazorpay, Parties, act, checkout, idem, new_order, paid_order


async def test_lifecycle_moves_money_once_and_audits_each_step(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    c, d = parties.client, parties.doer
    order_id = await new_order(pool, c, d, 100_000)
    r = await api.get(f"/api/orders/{order_id}", headers=d.headers)
    order = (await r.json())["data"]
    assert (order["status"], order["escrowState"], order["platformFee"], order["doerPayout"]) == (
        "pending_payment",
        "awaiting_payment",
        10_000,
        90_000,
    )
    paid = await checkout(api, c, order_id)
    assert razorpay.calls[0][1] == "/v1/orders"
    assert razorpay.calls[0][2]["amount"] == 100_000
    r = await api.post("/api/payments/verify", json=paid, headers=idem(c))
    order = (await r.json())["data"]
    assert (order["status"], order["escrowState"]) == ("in_progress", "funded")
    assert order["paymentGatewayPaymentId"] == paid["razorpay_payment_id"]
    assert order["startedAt"] is not None
    assert await ledger.balance(pool, ledger.escrow_account(order_id)) == 100_000
    assert await pool.fetchval("SELECT pending_balance FROM users WHERE id = $1", d.id) == 100_000

    deliverable = {"deliverables": [{"url": "https://files.example/logo.png", "description": "v1"}]}
    assert (await act(api, d, order_id, "submit", deliverable))[0] == 200
    status, body = await act(api, c, order_id, "request-revision", {"reason": "bigger please"})
    assert status == 200
    assert body["data"]["status"] == "in_progress"
    assert body["data"]["revisionRequests"][0]["reason"] == "bigger please"
    status, body = await act(
        api, d, order_id, "submit", {"deliverables": [{"url": "https://files.example/v2"}]}
    )
    assert [x["round"] for x in body["data"]["deliverables"]] == [1, 2]
    status, body = await act(api, c, order_id, "approve")
    assert status == 200, body
    assert (body["data"]["status"], body["data"]["escrowState"]) == ("completed", "released")
    assert body["data"]["completedAt"] is not None

    r = await api.get("/api/wallet/balance", headers=d.headers)
    wallet = (await r.json())["data"]
    assert (wallet["walletBalance"], wallet["pendingBalance"], wallet["totalEarnings"]) == (90_000, 0, 90_000)
    assert await ledger.balance(pool, ledger.platform_account("revenue", "INR")) >= 10_000
    actions = [
        r["action"]
        for r in await pool.fetch("SELECT action FROM order_events WHERE order_id = $1 ORDER BY id", order_id)
    ]
    assert actions == ["open", "fund", "submit", "request_revision", "submit", "approve"]
    events = await pool.fetch(
        "SELECT channels, payload FROM outbox WHERE event_type = 'ORDER_UPDATE' AND payload->>'orderId' = $1"
        " ORDER BY id",
        order_id,
    )
    assert len(events) == 6
    assert set(events[-1]["channels"]) == {f"user:{c.id}", f"user:{d.id}"}
    assert events[-1]["payload"] == {
        "orderId": order_id,
        "status": "completed",
        "escrowState": "released",
        "previousStatus": "submitted",
        "actorId": c.id,
        "updatedAt": events[-1]["payload"]["updatedAt"],
    }

    # The doer adds and verifies a bank account and withdraws part of the money.
    r = await api.post(
        "/api/bank-accounts",
        json={"holderName": "Doer", "ifsc": "HDFC0001234", "accountNumber": "123456789012"},
        headers=idem(d),
    )
    bank = (await r.json())["data"]
    assert r.status == 201
    assert bank["last4"] == "9012"
    assert "123456789012" not in await r.text()
    r = await api.post(f"/api/bank-accounts/{bank['id']}/verify", headers=idem(d))
    assert (await r.json())["data"]["status"] == "verified"
    r = await api.post(
        "/api/wallet/withdraw", json={"amount": 40_000, "bankAccountId": bank["id"]}, headers=idem(d)
    )
    assert r.status == 201, await r.text()
    assert (await r.json())["data"]["status"] == "processing"
    r = await api.get("/api/wallet/balance", headers=d.headers)
    assert (await r.json())["data"]["walletBalance"] == 50_000
    r = await api.get("/api/wallet/transactions?limit=1", headers=d.headers)
    page = await r.json()
    assert [t["kind"] for t in page["data"]] == ["withdrawal"]
    r = await api.get(f"/api/wallet/transactions?limit=5&cursor={page['nextCursor']}", headers=d.headers)
    assert [(t["kind"], t["direction"]) for t in (await r.json())["data"]] == [("release", "credit")]


async def test_cancel_after_funding_refunds_through_the_gateway(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    order_id = await paid_order(api, pool, parties.client, parties.doer)
    status, body = await act(api, parties.client, order_id, "cancel", {"reason": "changed my mind"})
    assert status == 200, body
    assert (body["data"]["status"], body["data"]["escrowState"]) == ("cancelled", "refunded")
    refund = razorpay.calls[-1]
    assert refund[1] == f"/v1/payments/{body['data']['paymentGatewayPaymentId']}/refund"
    assert refund[2]["amount"] == 100_000
    assert await ledger.balance(pool, ledger.escrow_account(order_id)) == 0
    assert (
        await pool.fetchval("SELECT status FROM gateway_refunds WHERE order_id = $1", order_id) == "initiated"
    )


async def test_gateway_refusing_the_refund_changes_nothing(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    order_id = await paid_order(api, pool, parties.client, parties.doer)
    razorpay.fail["/v1/payments"] = 400
    status, body = await act(api, parties.client, order_id, "cancel")
    assert status == 502, body
    row = await pool.fetchrow("SELECT status, escrow_state FROM orders WHERE id = $1", order_id)
    assert tuple(row) == ("in_progress", "funded")
    assert await ledger.balance(pool, ledger.escrow_account(order_id)) == 100_000


async def test_sandbox_checkout_pays_offline_and_is_refused_in_production(
    aiohttp_client: Any, make_app: Any, pool: asyncpg.Pool, parties: Parties
) -> None:
    dev = await aiohttp_client(make_app(payment_gateway="sandbox", razorpay_key_secret="sandbox-secret"))
    c = parties.client
    order_id = await new_order(pool, c, parties.doer)
    r = await dev.post("/api/payments/create-order", json={"orderId": order_id}, headers=idem(c))
    created = (await r.json())["data"]
    assert created["gatewayOrderId"].startswith("order_")
    r = await dev.post(
        "/api/dev/sandbox/checkout", json={"gatewayOrderId": created["gatewayOrderId"]}, headers=c.headers
    )
    paid = (await r.json())["data"]
    r = await dev.post("/api/payments/verify", json={**paid, "razorpay_signature": "f" * 64}, headers=idem(c))
    assert r.status == 400  # the sandbox signs for real: a forged signature fails as it would live
    r = await dev.post("/api/payments/verify", json=paid, headers=idem(c))
    assert (await r.json())["data"]["escrowState"] == "funded"
    status, body = await act(dev, c, order_id, "cancel")
    assert (status, body["data"]["escrowState"]) == (200, "refunded")

    prod = await aiohttp_client(make_app(env="production", payment_gateway="sandbox"))
    r = await prod.post(
        "/api/dev/sandbox/checkout", json={"gatewayOrderId": created["gatewayOrderId"]}, headers=c.headers
    )
    assert r.status == 404


async def test_refund_and_validation_webhooks_move_forward_once(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    from tests.money.conftest import webhook

    order_id = await paid_order(api, pool, parties.client, parties.doer)
    assert (await act(api, parties.client, order_id, "cancel"))[0] == 200
    refund_id = await pool.fetchval(
        "SELECT gateway_refund_id FROM gateway_refunds WHERE order_id = $1", order_id
    )
    body, headers = webhook(
        "refund.processed", "refund", {"id": refund_id, "status": "processed"}, event_id="e1"
    )
    r = await api.post("/api/webhooks/payment", data=body, headers=headers)
    assert (await r.json())["data"]["outcome"] == "refund_processed"
    body, headers = webhook(
        "refund.processed", "refund", {"id": refund_id, "status": "processed"}, event_id="e2"
    )
    r = await api.post("/api/webhooks/payment", data=body, headers=headers)
    assert (await r.json())["data"]["outcome"] == "stale"
    assert (
        await pool.fetchval("SELECT status FROM gateway_refunds WHERE order_id = $1", order_id) == "processed"
    )

    # A validation the gateway answers later, by webhook.
    d = parties.doer
    account = {"holderName": "D", "ifsc": "HDFC0000001", "accountNumber": "444455556666"}
    r = await api.post("/api/bank-accounts", json=account, headers=idem(d))
    bank_id = (await r.json())["data"]["id"]
    fund_account = await pool.fetchval("SELECT fund_account_id FROM bank_accounts WHERE id = $1", bank_id)
    entity = {"id": "fav_1", "fund_account": {"id": fund_account}, "results": {"account_status": "active"}}
    body, headers = webhook("fund_account.validation.completed", "fund_account.validation", entity)
    r = await api.post("/api/webhooks/payment", data=body, headers=headers)
    assert (await r.json())["data"]["outcome"] == "verified"
    r = await api.get("/api/bank-accounts", headers=d.headers)
    assert [(b["id"], b["status"]) for b in (await r.json())["data"]] == [(bank_id, "verified")]
