"""Follow-ups on refunds: the funding payment seen again with another amount is never refunded; a
refund.processed webhook racing the cancel that made the refund still marks it processed; a stray
payment's refund answered 504 after it was made is not made twice."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

import domain.orders
import rest.webhooks
from domain import ledger
from tests.money.conftest import FakeRazorpay, Parties, act, checkout, new_order, paid_order, webhook


def _refund_posts(razorpay: FakeRazorpay, payment_id: str) -> list[dict[str, Any]]:
    return [b for m, p, b in razorpay.calls if (m, p) == ("POST", f"/v1/payments/{payment_id}/refund")]


def _captured(gateway_order_id: str, payment_id: str, amount: int = 100_000) -> dict[str, Any]:
    return {"id": payment_id, "order_id": gateway_order_id, "amount": amount, "currency": "INR"}


async def _post_event(api: TestClient[Any, Any], event: str, name: str, entity: dict[str, Any]) -> Any:
    body, headers = webhook(event, name, entity)
    r = await api.post("/api/webhooks/payment", data=body, headers=headers)
    return r.status, await r.json()


async def test_funding_payment_seen_again_with_another_amount_is_not_refunded(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    order_id = await paid_order(api, pool, parties.client, parties.doer)
    row = await pool.fetchrow(
        "SELECT payment_gateway_order_id, payment_gateway_payment_id FROM orders WHERE id = $1", order_id
    )
    gateway_order_id, payment_id = row["payment_gateway_order_id"], row["payment_gateway_payment_id"]
    for amount in (1_000, 100_000, 250_000):
        status, body = await _post_event(
            api, "payment.captured", "payment", _captured(gateway_order_id, payment_id, amount)
        )
        assert (status, body["data"]["outcome"]) == (200, "already_funded")
    assert _refund_posts(razorpay, payment_id) == []
    assert await ledger.balance(pool, ledger.escrow_account(order_id)) == 100_000
    state = await pool.fetchrow("SELECT status, escrow_state FROM orders WHERE id = $1", order_id)
    assert tuple(state) == ("in_progress", "funded")
    moves = await pool.fetch("SELECT kind FROM ledger_transfers WHERE order_id = $1 ORDER BY id", order_id)
    assert [m["kind"] for m in moves] == ["fund"]


async def _wait_for(condition: Any, what: str) -> None:
    # A bound so a broken build fails instead of hanging; not a timing assertion.
    for _ in range(1000):
        if await condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_refund_webhook_racing_the_cancel_that_made_it_marks_it_processed(
    api: TestClient[Any, Any],
    pool: asyncpg.Pool,
    parties: Parties,
    razorpay: FakeRazorpay,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The webhook's first look runs before the cancel commits its refund row, and the cancel's
    catch-up check runs before the webhook commits: the worst interleaving, forced."""
    order_id = await paid_order(api, pool, parties.client, parties.doer)
    payment_id = await pool.fetchval("SELECT payment_gateway_payment_id FROM orders WHERE id = $1", order_id)
    refund_made, go_cancel = asyncio.Event(), asyncio.Event()
    webhook_applied, go_webhook = asyncio.Event(), asyncio.Event()
    real_refund_once, real_apply = domain.orders.refund_once, rest.webhooks.apply_event

    async def refund_then_pause(*args: Any, **kwargs: Any) -> Any:
        result = await real_refund_once(*args, **kwargs)
        refund_made.set()
        await go_cancel.wait()  # the order row stays locked, the refund row not yet written
        return result

    async def apply_then_pause(*args: Any, **kwargs: Any) -> str:
        outcome = await real_apply(*args, **kwargs)
        webhook_applied.set()
        await go_webhook.wait()  # the event is not committed yet
        return outcome

    monkeypatch.setattr(domain.orders, "refund_once", refund_then_pause)
    monkeypatch.setattr(rest.webhooks, "apply_event", apply_then_pause)
    cancel = asyncio.create_task(act(api, parties.client, order_id, "cancel"))
    await refund_made.wait()
    refund_id = razorpay.refunds[payment_id][0]["id"]
    entity = {"id": refund_id, "payment_id": payment_id, "status": "processed", "amount": 100_000}
    hook = asyncio.create_task(_post_event(api, "refund.processed", "refund", entity))

    async def webhook_looked() -> bool:
        # Either it finished its look (nothing found) or it waits on the order row's lock.
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE '%payment_gateway_payment_id = $1 FOR UPDATE%'"
        )
        return webhook_applied.is_set() or waiting > 0

    await _wait_for(webhook_looked, "the webhook's first look")
    go_cancel.set()
    assert (await cancel)[0] == 200
    go_webhook.set()
    status, body = await hook
    assert (status, body["data"]["outcome"]) == (200, "refund_processed")
    assert (
        await pool.fetchval("SELECT status FROM gateway_refunds WHERE order_id = $1", order_id) == "processed"
    )


async def test_stray_refund_answered_504_after_it_was_made_is_made_once(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    c = parties.client
    order_id = await new_order(pool, c, parties.doer)
    paid = await checkout(api, c, order_id)
    assert (await act(api, c, order_id, "cancel"))[0] == 200
    payment_id = paid["razorpay_payment_id"]
    entity = _captured(paid["razorpay_order_id"], payment_id)

    # Made, answered 504, and not visible yet: 502, nothing recorded (the gateway retries the event).
    razorpay.fail_after["/v1/payments"] = 504
    razorpay.hide_refunds = True
    status, _ = await _post_event(api, "payment.captured", "payment", entity)
    assert status == 502
    assert len(_refund_posts(razorpay, payment_id)) == 1
    assert await pool.fetchval("SELECT count(*) FROM ledger_transfers WHERE reference = $1", payment_id) == 0

    # The retry finds the refund made and uses it: no second refund.
    razorpay.hide_refunds = False
    status, body = await _post_event(api, "payment.captured", "payment", entity)
    assert (status, body["data"]["outcome"]) == (200, "stray_refunded")
    # The same event again is a duplicate; still that one refund, booked once.
    status, body = await _post_event(api, "payment.captured", "payment", entity)
    assert (status, body["data"]["outcome"]) == (200, "duplicate")
    assert len(_refund_posts(razorpay, payment_id)) == 1
    kinds = await pool.fetch("SELECT kind FROM ledger_transfers WHERE reference = $1 ORDER BY id", payment_id)
    assert [k["kind"] for k in kinds] == ["stray_payment", "stray_refund"]
    event = await pool.fetchval(
        "SELECT details FROM order_events WHERE order_id = $1 AND action = 'stray_refund'", order_id
    )
    assert event["refundId"] == razorpay.refunds[payment_id][0]["id"]


async def test_stray_refund_made_and_answered_504_first_time_is_used(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    c = parties.client
    order_id = await new_order(pool, c, parties.doer)
    paid = await checkout(api, c, order_id)
    assert (await act(api, c, order_id, "cancel"))[0] == 200
    payment_id = paid["razorpay_payment_id"]
    razorpay.fail_after["/v1/payments"] = 504
    status, body = await _post_event(
        api, "payment.captured", "payment", _captured(paid["razorpay_order_id"], payment_id)
    )
    assert (status, body["data"]["outcome"]) == (200, "stray_refunded")
    assert len(_refund_posts(razorpay, payment_id)) == 1
    assert await ledger.balance(pool, ledger.escrow_account(order_id)) == 0
