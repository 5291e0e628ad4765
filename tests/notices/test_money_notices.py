"""Notifications of the money events a real gateway answers later, by webhook, against the fake
Razorpay: a refund processed after a cancellation or a dispute resolved with a refund (once, however
often the webhook repeats), a stray payment refunded, and withdrawals paid, failed and reversed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hub.settings import Settings
from tests.factories import TestUser, make_user
from tests.market.conftest import fund_wallet
from tests.money.conftest import KEY_ID, KEY_SECRET, WEBHOOK_SECRET, FakeRazorpay, checkout, webhook
from tests.notices.conftest import apply, create_gig


@pytest.fixture
async def gateway(aiohttp_server: Callable[..., Any]) -> FakeRazorpay:
    fake = FakeRazorpay()
    server: TestServer = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
async def api(
    aiohttp_client: Callable[..., Any], make_app: Callable[..., Any], gateway: FakeRazorpay
) -> TestClient[Any, Any]:
    """The whole app paying through the fake Razorpay (workers off: the inbox is read over REST)."""
    app = make_app(
        payment_gateway="razorpay",
        razorpay_base_url=gateway.url,
        razorpay_key_id=KEY_ID,
        razorpay_key_secret=KEY_SECRET,
        razorpay_webhook_secret=WEBHOOK_SECRET,
    )
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


@pytest.fixture
def users(pool: asyncpg.Pool, settings: Settings) -> Callable[..., Any]:
    async def build(**fields: Any) -> TestUser:
        return await make_user(pool, settings, **fields)

    return build


def _idem(user: TestUser, key: str = "") -> dict[str, str]:
    import secrets

    return {**user.headers, "Idempotency-Key": key or secrets.token_hex(8)}


async def _inbox(api: TestClient[Any, Any], user: TestUser) -> list[dict[str, Any]]:
    r = await api.get("/api/notifications?limit=100", headers=user.headers)
    items: list[dict[str, Any]] = (await r.json())["data"]
    return items


def _events(items: list[dict[str, Any]]) -> Counter[str]:
    return Counter(i["data"]["event"] for i in items)


async def _hook(
    api: TestClient[Any, Any], event: str, name: str, entity: dict[str, Any], event_id: str
) -> str:
    body, headers = webhook(event, name, entity, event_id=event_id)
    r = await api.post("/api/webhooks/payment", data=body, headers=headers)
    assert r.status == 200, await r.text()
    return str((await r.json())["data"]["outcome"])


async def _paid_order(api: TestClient[Any, Any], client: TestUser, doer: TestUser) -> tuple[str, str]:
    gig = await create_gig(api, client)
    application = await apply(api, doer, gig["id"], bid=60_000)
    r = await api.post(f"/api/applications/{application['id']}/accept", headers=client.headers)
    order_id = (await r.json())["data"]["order"]["id"]
    r = await api.post(
        "/api/payments/verify", json=await checkout(api, client, order_id), headers=_idem(client)
    )
    assert r.status == 200, await r.text()
    return gig["id"], order_id


async def test_refund_processed_by_webhook_is_told_once(
    api: TestClient[Any, Any], users: Any, pool: asyncpg.Pool
) -> None:
    client, doer = await users(), await users()
    _, order_id = await _paid_order(api, client, doer)
    r = await api.post(f"/api/orders/{order_id}/cancel", json={}, headers=_idem(doer))
    assert r.status == 200, await r.text()
    # Razorpay's refund is pending: the client hears of the cancellation, not yet of the refund.
    assert "refund_processed" not in _events(await _inbox(api, client))
    refund_id = await pool.fetchval(
        "SELECT gateway_refund_id FROM gateway_refunds WHERE order_id = $1", order_id
    )
    entity = {"id": refund_id, "status": "processed"}
    assert await _hook(api, "refund.processed", "refund", entity, "evt_r1") == "refund_processed"
    assert await _hook(api, "refund.processed", "refund", entity, "evt_r2") == "stale"
    inbox = await _inbox(api, client)
    assert _events(inbox)["refund_processed"] == 1 and _events(inbox)["order_cancelled"] == 1
    (refund,) = [i for i in inbox if i["data"]["event"] == "refund_processed"]
    assert (
        refund["type"] == "payment" and refund["data"]["orderId"] == order_id and "₹600.00" in refund["body"]
    )
    assert "refund_processed" not in _events(await _inbox(api, doer))


async def test_dispute_opened_and_resolved_with_a_refund(
    api: TestClient[Any, Any], users: Any, pool: asyncpg.Pool
) -> None:
    client, doer = await users(), await users()
    admin = await users(roles=("doer", "client", "admin"))
    gig_id, order_id = await _paid_order(api, client, doer)
    r = await api.post(
        f"/api/orders/{order_id}/dispute", json={"reason": "Silent for days."}, headers=_idem(client)
    )
    assert r.status == 200, await r.text()
    assert _events(await _inbox(api, doer))["dispute_opened"] == 1
    assert "dispute_opened" not in _events(await _inbox(api, client))  # they opened it
    r = await api.post(
        f"/api/orders/{order_id}/resolve",
        json={"outcome": "refund", "note": "No work."},
        headers=_idem(admin),
    )
    assert r.status == 200, await r.text()
    for who in (client, doer):
        (resolved,) = [i for i in await _inbox(api, who) if i["data"]["event"] == "dispute_resolved"]
        assert resolved["data"] == {"event": "dispute_resolved", "orderId": order_id, "gigId": gig_id,
                                    "applicationId": resolved["data"]["applicationId"]}  # fmt: skip
        assert "refunded" in resolved["body"]
    r = await api.get(f"/api/gigs/{gig_id}")
    assert (await r.json())["data"]["status"] == "open"  # refunded before the deadline: hire again
    refund_id = await pool.fetchval(
        "SELECT gateway_refund_id FROM gateway_refunds WHERE order_id = $1", order_id
    )
    await _hook(api, "refund.processed", "refund", {"id": refund_id, "status": "processed"}, "evt_d1")
    assert _events(await _inbox(api, client))["refund_processed"] == 1


async def test_a_stray_payment_refunded_tells_the_client(
    api: TestClient[Any, Any], users: Any, pool: asyncpg.Pool
) -> None:
    client, doer = await users(), await users()
    gig = await create_gig(api, client)
    application = await apply(api, doer, gig["id"], bid=60_000)
    r = await api.post(f"/api/applications/{application['id']}/accept", headers=client.headers)
    order_id = (await r.json())["data"]["order"]["id"]
    paid = await checkout(api, client, order_id)
    r = await api.post(f"/api/orders/{order_id}/cancel", json={}, headers=_idem(client))
    assert r.status == 200
    r = await api.post("/api/payments/verify", json=paid, headers=_idem(client))
    assert r.status == 409  # paid after the cancellation: refunded at once
    (refund,) = [i for i in await _inbox(api, client) if i["data"]["event"] == "refund_processed"]
    assert refund["data"]["orderId"] == order_id and "₹600.00" in refund["body"]


async def test_withdrawals_paid_failed_and_reversed(
    api: TestClient[Any, Any], users: Any, pool: asyncpg.Pool, gateway: FakeRazorpay
) -> None:
    doer = await users()
    await fund_wallet(pool, doer, 300_000)
    r = await api.post(
        "/api/bank-accounts",
        json={"holderName": "D", "ifsc": "SBIN0000001", "accountNumber": "111122223333"},
        headers=_idem(doer),
    )
    bank_id = (await r.json())["data"]["id"]
    await api.post(f"/api/bank-accounts/{bank_id}/verify", headers=_idem(doer))

    async def withdraw(amount: int) -> dict[str, Any]:
        r = await api.post(
            "/api/wallet/withdraw", json={"amount": amount, "bankAccountId": bank_id}, headers=_idem(doer)
        )
        assert r.status == 201, await r.text()
        data: dict[str, Any] = (await r.json())["data"]
        assert data["status"] == "processing"  # nothing to tell yet
        return data

    first, second = await withdraw(100_000), await withdraw(50_000)
    assert _events(await _inbox(api, doer)) == Counter()
    entity = {"id": first["payoutId"], "reference_id": first["id"], "failure_reason": "Account closed"}
    assert await _hook(api, "payout.failed", "payout", {**entity, "status": "failed"}, "evt_p1") == "failed"
    assert await _hook(api, "payout.failed", "payout", {**entity, "status": "failed"}, "evt_p2") == "stale"
    entity = {"id": second["payoutId"], "reference_id": second["id"]}
    assert (
        await _hook(api, "payout.processed", "payout", {**entity, "status": "processed"}, "evt_p3")
        == "processed"
    )
    assert (
        await _hook(api, "payout.reversed", "payout", {**entity, "status": "reversed"}, "evt_p4")
        == "reversed"
    )
    inbox = await _inbox(api, doer)
    assert _events(inbox) == Counter(withdrawal_failed=1, withdrawal_paid=1, withdrawal_reversed=1)
    by_event = {i["data"]["event"]: i for i in inbox}
    assert by_event["withdrawal_failed"]["data"]["withdrawalId"] == first["id"]
    assert "Account closed" in by_event["withdrawal_failed"]["body"]
    assert "₹1,000.00" in by_event["withdrawal_failed"]["body"]
    assert by_event["withdrawal_paid"]["data"]["withdrawalId"] == second["id"]
    assert by_event["withdrawal_reversed"]["data"]["withdrawalId"] == second["id"]
    assert {i["type"] for i in inbox} == {"payment"}
