"""Money that must go out once even when an answer is lost: a refund the gateway made but did not
confirm (504), a retried cancel, and a withdrawal retried after failing past its first commit."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

import domain.payouts
from domain import ledger
from tests.money.conftest import FakeRazorpay, Parties, act, idem, paid_order


def _refund_posts(razorpay: FakeRazorpay, payment_id: str) -> list[dict[str, Any]]:
    return [b for m, p, b in razorpay.calls if (m, p) == ("POST", f"/v1/payments/{payment_id}/refund")]


async def _payment_id(pool: asyncpg.Pool, order_id: str) -> str:
    return str(await pool.fetchval("SELECT payment_gateway_payment_id FROM orders WHERE id = $1", order_id))


async def _state(pool: asyncpg.Pool, order_id: str) -> tuple[Any, ...]:
    row = await pool.fetchrow("SELECT status, escrow_state FROM orders WHERE id = $1", order_id)
    return tuple(row)


async def _escrow_moves(pool: asyncpg.Pool, order_id: str) -> list[str]:
    rows = await pool.fetch("SELECT kind FROM ledger_transfers WHERE order_id = $1 ORDER BY id", order_id)
    return [r["kind"] for r in rows]


async def test_refund_made_but_answered_504_still_cancels_once(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    order_id = await paid_order(api, pool, parties.client, parties.doer)
    payment_id = await _payment_id(pool, order_id)
    razorpay.fail_after["/v1/payments"] = 504
    status, body = await act(api, parties.client, order_id, "cancel", {"reason": "changed my mind"})
    assert status == 200, body
    assert (body["data"]["status"], body["data"]["escrowState"]) == ("cancelled", "refunded")
    assert len(_refund_posts(razorpay, payment_id)) == 1
    made = razorpay.refunds[payment_id][0]["id"]
    assert (
        await pool.fetchval("SELECT gateway_refund_id FROM gateway_refunds WHERE order_id = $1", order_id)
        == made
    )
    assert await _escrow_moves(pool, order_id) == ["fund", "refund"]
    assert await ledger.balance(pool, ledger.escrow_account(order_id)) == 0

    # Cancelled and refunded: approving or cancelling again moves nothing and refunds nothing.
    razorpay.fail_after.clear()
    assert (await act(api, parties.client, order_id, "approve"))[0] == 409
    assert (await act(api, parties.client, order_id, "cancel"))[0] == 409
    assert len(_refund_posts(razorpay, payment_id)) == 1
    assert await _escrow_moves(pool, order_id) == ["fund", "refund"]
    assert await pool.fetchval("SELECT wallet_balance FROM users WHERE id = $1", parties.doer.id) == 0


@pytest.mark.parametrize("check", ["not_visible", "check_fails"])
async def test_unconfirmed_refund_answers_502_and_the_retry_uses_it(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay, check: str
) -> None:
    order_id = await paid_order(api, pool, parties.client, parties.doer)
    payment_id = await _payment_id(pool, order_id)
    # The refund is made but answered 504, and the check after it cannot see it.
    razorpay.fail_after["/v1/payments"] = 504
    if check == "not_visible":
        razorpay.hide_refunds = True
    else:
        razorpay.then_fail["GET /v1/payments"] = 503
    status, body = await act(api, parties.client, order_id, "cancel")
    assert status == 502, body
    assert "could not be confirmed" in body["error"]["message"]
    assert "Retry the cancellation" in body["error"]["message"]
    assert await _state(pool, order_id) == ("in_progress", "funded")
    assert await _escrow_moves(pool, order_id) == ["fund"]
    assert await pool.fetchval("SELECT count(*) FROM gateway_refunds WHERE order_id = $1", order_id) == 0
    assert len(_refund_posts(razorpay, payment_id)) == 1

    # The retry's pre-check finds the refund the gateway made and uses it: no second refund.
    razorpay.fail.clear()
    razorpay.fail_after.clear()
    razorpay.then_fail.clear()
    razorpay.hide_refunds = False
    status, body = await act(api, parties.client, order_id, "cancel")
    assert status == 200, body
    assert (body["data"]["status"], body["data"]["escrowState"]) == ("cancelled", "refunded")
    assert len(_refund_posts(razorpay, payment_id)) == 1
    made = razorpay.refunds[payment_id][0]["id"]
    assert (
        await pool.fetchval("SELECT gateway_refund_id FROM gateway_refunds WHERE order_id = $1", order_id)
        == made
    )
    assert await _escrow_moves(pool, order_id) == ["fund", "refund"]


async def test_definite_refusal_changes_nothing_and_listing_failure_sends_nothing(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    order_id = await paid_order(api, pool, parties.client, parties.doer)
    payment_id = await _payment_id(pool, order_id)
    razorpay.fail[f"POST /v1/payments/{payment_id}/refund"] = 400
    status, body = await act(api, parties.client, order_id, "cancel")
    assert status == 502, body
    assert "refused" in body["error"]["message"]
    assert len(_refund_posts(razorpay, payment_id)) == 1
    assert razorpay.refunds.get(payment_id, []) == []
    assert await _state(pool, order_id) == ("in_progress", "funded")
    assert await _escrow_moves(pool, order_id) == ["fund"]

    # Existing refunds that cannot be listed: no refund is even asked for.
    razorpay.fail.clear()
    razorpay.fail["GET /v1/payments"] = 503
    status, body = await act(api, parties.client, order_id, "cancel")
    assert status == 502, body
    assert len(_refund_posts(razorpay, payment_id)) == 1
    assert await _state(pool, order_id) == ("in_progress", "funded")

    razorpay.fail.clear()
    assert (await act(api, parties.client, order_id, "cancel"))[0] == 200
    assert len(_refund_posts(razorpay, payment_id)) == 2  # the refused one, then the real one
    assert await _escrow_moves(pool, order_id) == ["fund", "refund"]


async def _wallet_with_bank(api: TestClient[Any, Any], pool: asyncpg.Pool, p: Parties) -> str:
    order_id = await paid_order(api, pool, p.client, p.doer)
    status, _ = await act(api, p.doer, order_id, "submit", {"deliverables": [{"url": "https://f.example/a"}]})
    assert status == 200
    assert (await act(api, p.client, order_id, "approve"))[0] == 200  # doer wallet: 90 000
    r = await api.post(
        "/api/bank-accounts",
        json={"holderName": "D", "ifsc": "SBIN0000001", "accountNumber": "987654321"},
        headers=idem(p.doer),
    )
    bank_id = str((await r.json())["data"]["id"])
    assert (await api.post(f"/api/bank-accounts/{bank_id}/verify", headers=idem(p.doer))).status == 200
    return bank_id


async def test_withdrawal_retried_after_failing_past_its_commit_happens_once(
    api: TestClient[Any, Any],
    pool: asyncpg.Pool,
    parties: Parties,
    razorpay: FakeRazorpay,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = parties.doer
    bank_id = await _wallet_with_bank(api, pool, parties)
    settle = domain.payouts.settle_withdrawal
    broken = {"left": 1}

    async def settle_failing_once(*args: Any, **kwargs: Any) -> str:
        if broken["left"]:
            broken["left"] -= 1
            raise RuntimeError("the settle step failed")
        return await settle(*args, **kwargs)

    monkeypatch.setattr(domain.payouts, "settle_withdrawal", settle_failing_once)
    headers = idem(d, "withdraw-once")
    body = {"amount": 30_000, "bankAccountId": bank_id}
    r = await api.post("/api/wallet/withdraw", json=body, headers=headers)
    assert r.status == 500
    r = await api.post("/api/wallet/withdraw", json=body, headers=headers)
    assert r.status == 201, await r.text()
    data = (await r.json())["data"]
    assert data["amount"] == 30_000
    rows = await pool.fetch("SELECT id FROM withdrawals WHERE user_id = $1", d.id)
    assert [str(x["id"]) for x in rows] == [data["id"]]
    debits = await pool.fetchval(
        "SELECT count(*) FROM ledger_transfers WHERE kind = 'withdrawal' AND reference = $1", data["id"]
    )
    assert debits == 1
    assert await pool.fetchval("SELECT wallet_balance FROM users WHERE id = $1", d.id) == 60_000
    assert len([c for c in razorpay.calls if c[1] == "/v1/payouts"]) == 1

    # A third try is the stored answer; the same key for another amount is refused and changes nothing.
    r = await api.post("/api/wallet/withdraw", json=body, headers=headers)
    assert (r.status, (await r.json())["data"]["id"]) == (201, data["id"])
    r = await api.post("/api/wallet/withdraw", json={**body, "amount": 1_000}, headers=headers)
    assert r.status == 422
    assert await pool.fetchval("SELECT count(*) FROM withdrawals WHERE user_id = $1", d.id) == 1
    assert await pool.fetchval("SELECT wallet_balance FROM users WHERE id = $1", d.id) == 60_000
    assert len([c for c in razorpay.calls if c[1] == "/v1/payouts"]) == 1


async def test_a_withdrawal_key_reused_after_retention_is_a_new_withdrawal(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    """Issue 13 defect 6: the repeat was answered 422 (or the old withdrawal) once the key's record
    was swept; the README promises a repeat after retention runs as a new request."""
    from workers.housekeeping import Housekeeping
    from workers.metrics import WorkerMetrics

    d = parties.doer
    bank_id = await _wallet_with_bank(api, pool, parties)
    headers = idem(d, "withdraw-reused")
    first = await api.post(
        "/api/wallet/withdraw", json={"amount": 10_000, "bankAccountId": bank_id}, headers=headers
    )
    assert first.status == 201, await first.text()
    first_id = (await first.json())["data"]["id"]
    await pool.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = $1",
        "withdraw-reused",
    )
    await Housekeeping(pool, WorkerMetrics(), idempotency_retention_s=86400).sweep()
    for amount in (10_000, 5_000):  # the same body, then another: both new requests now
        if amount == 5_000:
            await pool.execute("DELETE FROM idempotency_keys WHERE key = $1", "withdraw-reused")
        r = await api.post(
            "/api/wallet/withdraw", json={"amount": amount, "bankAccountId": bank_id}, headers=headers
        )
        assert r.status == 201, await r.text()
        assert "Idempotent-Replayed" not in r.headers
        assert (await r.json())["data"]["id"] != first_id
    assert await pool.fetchval("SELECT count(*) FROM withdrawals WHERE user_id = $1", d.id) == 3
    assert await pool.fetchval("SELECT wallet_balance FROM users WHERE id = $1", d.id) == 90_000 - 25_000
    assert len([c for c in razorpay.calls if c[1] == "/v1/payouts"]) == 3
    assert await ledger.audit(pool) == []
