"""Admin operations over REST: a pending payout retried now (once at the gateway: the request is
idempotent on the withdrawal id; concurrent retries: one asks, the other hears 409), failed payouts
listed but not retried, and a push dead letter replayed into a new push job exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.money.conftest import FakeRazorpay, Parties, api, money_settings, parties, razorpay
from tests.money.test_payout_sweep import _payouts, _stuck_withdrawal

__all__ = ["api", "money_settings", "parties", "razorpay"]  # the money tests' fixtures, used here too


async def test_retry_pending_payout(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    withdrawal_id = await _stuck_withdrawal(api, pool, parties, razorpay)
    r = await api.get("/api/admin/payouts?status=pending", headers=parties.admin.headers)
    assert withdrawal_id in [w["id"] for w in (await r.json())["data"]]
    results = await asyncio.gather(*(
        api.post(f"/api/admin/payouts/{withdrawal_id}/retry", json={"reason": "support ticket 12"},
                 headers=parties.admin.headers)
        for _ in range(2)
    ))  # fmt: skip
    # The row is locked NOWAIT while the gateway is asked: the second hears 409 either way.
    assert sorted(r.status for r in results) == [200, 409]
    won = [await r.json() for r in results if r.status == 200]
    assert won[0]["outcome"] == "processing" and won[0]["data"]["status"] == "processing"
    # The first request (answered 504) and the one retry.
    assert len(_payouts(razorpay, withdrawal_id)) == 2
    r = await api.post(f"/api/admin/payouts/{withdrawal_id}/retry", json={}, headers=parties.admin.headers)
    assert r.status == 409 and (await r.json())["error"]["details"]["status"] == "processing"
    audit = await pool.fetch("SELECT * FROM admin_audit WHERE target_id = $1", withdrawal_id)
    assert [(a["action"], a["reason"]) for a in audit] == [("payout.retry", "support ticket 12")]


async def test_failed_payouts_are_listed_not_retried(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    withdrawal_id = await _stuck_withdrawal(api, pool, parties, razorpay)
    await pool.execute(
        "UPDATE withdrawals SET status = 'failed', failure_reason = 'IFSC closed' WHERE id = $1",
        withdrawal_id,
    )
    r = await api.get("/api/admin/payouts", headers=parties.admin.headers)
    listed = {w["id"]: w for w in (await r.json())["data"]}
    assert listed[withdrawal_id]["failureReason"] == "IFSC closed"
    r = await api.post(f"/api/admin/payouts/{withdrawal_id}/retry", json={}, headers=parties.admin.headers)
    assert r.status == 409
    r = await api.post(
        "/api/admin/payouts/00000000-0000-0000-0000-000000000000/retry",
        json={},
        headers=parties.admin.headers,
    )
    assert r.status == 404


async def test_replay_dead_letter_once(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties
) -> None:
    letter_id = await pool.fetchval(
        "INSERT INTO push_dead_letters (job_id, user_id, type, title, body, data, tokens, attempts, error,"
        " created_at) VALUES (1, $1, 'payment', 'Paid', 'You were paid', '{\"event\": \"x\"}', '{tok-a}', 8,"
        " 'UNAVAILABLE', now()) RETURNING id",
        parties.doer.id,
    )
    r = await api.get("/api/admin/push-dead-letters", headers=parties.admin.headers)
    assert letter_id in [d["id"] for d in (await r.json())["data"]]
    results = await asyncio.gather(*(
        api.post(f"/api/admin/push-dead-letters/{letter_id}/replay", json={}, headers=parties.admin.headers)
        for _ in range(3)
    ))  # fmt: skip
    assert sorted(r.status for r in results) == [200, 409, 409]
    done = next([await r.json() for r in results if r.status == 200].__iter__())["data"]
    job = await pool.fetchrow("SELECT * FROM push_jobs WHERE id = $1", done["replayJobId"])
    assert job is not None and str(job["user_id"]) == parties.doer.id and job["tokens"] == ["tok-a"]
    assert job["attempts"] == 0 and job["title"] == "Paid"
    r = await api.get("/api/admin/push-dead-letters?replayed=true", headers=parties.admin.headers)
    assert letter_id in [d["id"] for d in (await r.json())["data"]]
    for bad in ("abc", "99999999999999999999", "-1"):
        r = await api.post(
            f"/api/admin/push-dead-letters/{bad}/replay", json={}, headers=parties.admin.headers
        )
        assert r.status == 404, bad
    audit = await pool.fetch("SELECT action FROM admin_audit WHERE target_id = $1", str(letter_id))
    assert [a["action"] for a in audit] == ["push.replay"]
