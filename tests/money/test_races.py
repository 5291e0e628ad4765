"""Concurrency over real PostgreSQL: money moves once, wallets never go below zero, webhooks apply once
whatever their number, timing or order relative to the checkout verify."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import asyncpg
import orjson
from aiohttp.test_utils import TestClient

from domain import ledger
from domain.gateway import checkout_signature, webhook_signature
from tests.money.conftest import (
    KEY_SECRET,
    WEBHOOK_SECRET,
    FakeRazorpay,
    Parties,
    act,
    checkout,
    idem,
    new_order,
    paid_order,
    webhook,
)


async def _submitted(api: TestClient[Any, Any], pool: asyncpg.Pool, p: Parties, amount: int = 100_000) -> str:
    order_id = await paid_order(api, pool, p.client, p.doer, amount)
    status, _ = await act(api, p.doer, order_id, "submit", {"deliverables": [{"url": "https://f.example/a"}]})
    assert status == 200
    return order_id


async def test_fifty_concurrent_approvals_release_once(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties
) -> None:
    order_id = await _submitted(api, pool, parties)
    results = await asyncio.gather(*(act(api, parties.client, order_id, "approve") for _ in range(50)))
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] + [409] * 49
    assert all(b["error"]["details"]["status"] == "completed" for s, b in results if s == 409)
    assert await pool.fetchval("SELECT count(*) FROM ledger_transfers WHERE order_id = $1", order_id) == 3
    assert await pool.fetchval("SELECT wallet_balance FROM users WHERE id = $1", parties.doer.id) == 90_000
    approvals = await pool.fetchval(
        "SELECT count(*) FROM order_events WHERE order_id = $1 AND action = 'approve'", order_id
    )
    assert approvals == 1


async def test_concurrent_withdrawals_never_overdraw(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties
) -> None:
    order_id = await _submitted(api, pool, parties)
    assert (await act(api, parties.client, order_id, "approve"))[0] == 200  # doer wallet: 90 000
    d = parties.doer
    r = await api.post(
        "/api/bank-accounts",
        json={"holderName": "D", "ifsc": "SBIN0000001", "accountNumber": "987654321"},
        headers=idem(d),
    )
    bank_id = (await r.json())["data"]["id"]
    assert (await api.post(f"/api/bank-accounts/{bank_id}/verify", headers=idem(d))).status == 200

    async def withdraw() -> int:
        r = await api.post(
            "/api/wallet/withdraw", json={"amount": 20_000, "bankAccountId": bank_id}, headers=idem(d)
        )
        body = await r.json()
        if r.status == 409:
            assert body["error"]["details"]["reason"] == "insufficient_funds"
        return r.status

    statuses = await asyncio.gather(*(withdraw() for _ in range(12)))  # 240 000 asked of 90 000
    assert sorted(statuses) == [201] * 4 + [409] * 8
    assert await pool.fetchval("SELECT wallet_balance FROM users WHERE id = $1", d.id) == 10_000
    assert await ledger.balance(pool, ledger.wallet_account(d.id, "INR")) == 10_000
    assert await pool.fetchval("SELECT count(*) FROM withdrawals WHERE user_id = $1", d.id) == 4


async def _captured(gateway_order_id: str, payment_id: str, amount: int = 100_000) -> dict[str, Any]:
    return {
        "id": payment_id,
        "order_id": gateway_order_id,
        "amount": amount,
        "currency": "INR",
        "status": "captured",
    }


async def test_one_webhook_delivered_ten_times_at_once_funds_once(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties
) -> None:
    order_id = await new_order(pool, parties.client, parties.doer)
    paid = await checkout(api, parties.client, order_id)
    body, headers = webhook(
        "payment.captured",
        "payment",
        await _captured(paid["razorpay_order_id"], paid["razorpay_payment_id"]),
        event_id="evt_" + secrets.token_hex(6),
    )
    responses = await asyncio.gather(
        *(api.post("/api/webhooks/payment", data=body, headers=headers) for _ in range(10))
    )
    outcomes = sorted([(r.status, (await r.json())["data"]["outcome"]) for r in responses])
    assert outcomes == [(200, "duplicate")] * 9 + [(200, "funded")]
    assert await pool.fetchval("SELECT count(*) FROM ledger_transfers WHERE order_id = $1", order_id) == 1
    assert await pool.fetchval("SELECT status FROM orders WHERE id = $1", order_id) == "in_progress"


async def test_the_same_payment_under_two_events_and_no_event_ids_funds_once(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties
) -> None:
    order_id = await new_order(pool, parties.client, parties.doer)
    paid = await checkout(api, parties.client, order_id)
    payment = await _captured(paid["razorpay_order_id"], paid["razorpay_payment_id"])
    captured = webhook("payment.captured", "payment", payment)
    order_paid_body = (
        b'{"entity":"event","event":"order.paid","payload":{"payment":{"entity":'
        + orjson.dumps(payment)
        + b'},"order":{"entity":{"id":"'
        + paid["razorpay_order_id"].encode()
        + b'"}}}}'
    )
    order_paid = (
        order_paid_body,
        {"X-Razorpay-Signature": webhook_signature(WEBHOOK_SECRET, order_paid_body)},
    )
    sends = [captured, order_paid] * 4
    responses = await asyncio.gather(
        *(api.post("/api/webhooks/payment", data=b, headers=h) for b, h in sends)
    )
    outcomes = sorted([(await r.json())["data"]["outcome"] for r in responses])
    assert outcomes.count("funded") == 1
    assert outcomes.count("duplicate") == 6  # each body is its own event (hash of the body)
    assert outcomes.count("already_funded") == 1
    assert await pool.fetchval("SELECT count(*) FROM ledger_transfers WHERE order_id = $1", order_id) == 1


async def test_webhook_before_after_instead_of_and_racing_the_verify(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties
) -> None:
    c = parties.client

    async def hook(paid: dict[str, str]) -> str:
        body, headers = webhook(
            "payment.captured",
            "payment",
            await _captured(paid["razorpay_order_id"], paid["razorpay_payment_id"]),
            event_id="evt_" + secrets.token_hex(6),
        )
        r = await api.post("/api/webhooks/payment", data=body, headers=headers)
        assert r.status == 200
        outcome: str = (await r.json())["data"]["outcome"]
        return outcome

    async def verify(paid: dict[str, str]) -> int:
        r = await api.post("/api/payments/verify", json=paid, headers=idem(c))
        if r.status == 200:
            assert (await r.json())["data"]["escrowState"] == "funded"
        return r.status

    before, after, instead, racing = [await new_order(pool, c, parties.doer) for _ in range(4)]
    paid = await checkout(api, c, before)
    assert await hook(paid) == "funded"
    assert await verify(paid) == 200
    paid = await checkout(api, c, after)
    assert await verify(paid) == 200
    assert await hook(paid) == "already_funded"
    paid = await checkout(api, c, instead)
    assert await hook(paid) == "funded"
    paid = await checkout(api, c, racing)
    results = await asyncio.gather(hook(paid), verify(paid), hook(paid), verify(paid))
    assert results[1] == results[3] == 200
    assert {results[0], results[2]} <= {"funded", "already_funded"}
    for order_id in (before, after, instead, racing):
        row = await pool.fetchrow("SELECT status, escrow_state FROM orders WHERE id = $1", order_id)
        assert tuple(row) == ("in_progress", "funded")
        assert await pool.fetchval("SELECT count(*) FROM ledger_transfers WHERE order_id = $1", order_id) == 1


async def test_payout_failure_by_webhook_returns_the_money_once(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    order_id = await _submitted(api, pool, parties)
    await act(api, parties.client, order_id, "approve")
    d = parties.doer
    r = await api.post(
        "/api/bank-accounts",
        json={"holderName": "D", "ifsc": "SBIN0000001", "accountNumber": "111122223333"},
        headers=idem(d),
    )
    bank_id = (await r.json())["data"]["id"]
    await api.post(f"/api/bank-accounts/{bank_id}/verify", headers=idem(d))
    r = await api.post(
        "/api/wallet/withdraw", json={"amount": 90_000, "bankAccountId": bank_id}, headers=idem(d)
    )
    withdrawal = (await r.json())["data"]
    assert withdrawal["status"] == "processing"
    assert await pool.fetchval("SELECT wallet_balance FROM users WHERE id = $1", d.id) == 0
    entity = {"id": withdrawal["payoutId"], "reference_id": withdrawal["id"], "status": "failed"}
    failed = [webhook("payout.failed", "payout", entity, event_id=f"evt_f{i}") for i in range(5)]
    processed = webhook("payout.processed", "payout", {**entity, "status": "processed"}, event_id="evt_p")
    responses = await asyncio.gather(
        *(api.post("/api/webhooks/payment", data=b, headers=h) for b, h in failed)
    )
    outcomes = sorted([(await r.json())["data"]["outcome"] for r in responses])
    assert outcomes == ["failed"] + ["stale"] * 4
    r = await api.post("/api/webhooks/payment", data=processed[0], headers=processed[1])
    assert (await r.json())["data"]["outcome"] == "stale"  # never backward from failed
    assert await pool.fetchval("SELECT wallet_balance FROM users WHERE id = $1", d.id) == 90_000
    assert await pool.fetchval("SELECT status FROM withdrawals WHERE id = $1", withdrawal["id"]) == "failed"


async def test_payments_that_cannot_fund_are_refunded_once(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    c = parties.client

    def refunds(payment_id: str) -> list[dict[str, Any]]:
        return [body for _, path, body in razorpay.calls if path == f"/v1/payments/{payment_id}/refund"]

    # Paid after the order was cancelled: refunded, whatever number of events say so.
    order_id = await new_order(pool, c, parties.doer)
    paid = await checkout(api, c, order_id)
    assert (await act(api, c, order_id, "cancel"))[0] == 200
    entity = await _captured(paid["razorpay_order_id"], paid["razorpay_payment_id"])
    sends = [webhook("payment.captured", "payment", entity, event_id=f"evt_late{i}") for i in range(3)]
    outcomes = [
        (await (await api.post("/api/webhooks/payment", data=b, headers=h)).json())["data"]["outcome"]
        for b, h in sends
    ]
    assert outcomes == ["stray_refunded"] * 3
    assert [r["amount"] for r in refunds(paid["razorpay_payment_id"])] == [100_000]
    row = await pool.fetchrow("SELECT status, escrow_state FROM orders WHERE id = $1", order_id)
    assert tuple(row) == ("cancelled", "awaiting_payment")

    # A second checkout of a funded order, verified by the client: 409, and refunded.
    order_id = await paid_order(api, pool, c, parties.doer)
    gateway_order_id = await pool.fetchval(
        "SELECT payment_gateway_order_id FROM orders WHERE id = $1", order_id
    )
    payment_id = "pay_second"
    second = {
        "razorpay_order_id": gateway_order_id,
        "razorpay_payment_id": payment_id,
        "razorpay_signature": checkout_signature(KEY_SECRET, gateway_order_id, payment_id),
    }
    r = await api.post("/api/payments/verify", json=second, headers=idem(c))
    assert (r.status, (await r.json())["error"]["details"]["reason"]) == (409, "stray_refunded")
    assert len(refunds(payment_id)) == 1
    assert await ledger.balance(pool, ledger.escrow_account(order_id)) == 100_000

    # A payment of another amount than the order's: refunded, the order still awaits its payment.
    order_id = await new_order(pool, c, parties.doer)
    paid = await checkout(api, c, order_id)
    entity = await _captured(paid["razorpay_order_id"], paid["razorpay_payment_id"], amount=1_000)
    body, headers = webhook("payment.captured", "payment", entity)
    r = await api.post("/api/webhooks/payment", data=body, headers=headers)
    assert (await r.json())["data"]["outcome"] == "stray_refunded"
    assert [x["amount"] for x in refunds(paid["razorpay_payment_id"])] == [1_000]
    assert await pool.fetchval("SELECT status FROM orders WHERE id = $1", order_id) == "pending_payment"

    # The gateway refusing such a refund: 502, nothing recorded, the gateway will retry the event.
    order_id = await new_order(pool, c, parties.doer)
    paid = await checkout(api, c, order_id)
    await act(api, c, order_id, "cancel")
    razorpay.fail["/v1/payments"] = 500
    entity = await _captured(paid["razorpay_order_id"], paid["razorpay_payment_id"])
    body, headers = webhook("payment.captured", "payment", entity, event_id="evt_retry")
    r = await api.post("/api/webhooks/payment", data=body, headers=headers)
    assert r.status == 502
    assert await pool.fetchval("SELECT count(*) FROM gateway_events WHERE event_id = 'evt_retry'") == 0
    del razorpay.fail["/v1/payments"]
    r = await api.post("/api/webhooks/payment", data=body, headers=headers)
    assert (await r.json())["data"]["outcome"] == "stray_refunded"
