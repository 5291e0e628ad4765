"""profileComplete is required to post a gig, apply and withdraw; a verified phone to open an order,
pay and withdraw. Each refusal is a clear 4xx naming what is missing, and changes nothing."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from hub.settings import Settings
from tests.factories import make_user
from tests.market.conftest import gig_body
from tests.money.conftest import Parties, idem, new_order


async def test_incomplete_profile_cannot_post_apply_or_withdraw(
    api: TestClient[Any, Any], pool: asyncpg.Pool, settings: Settings, parties: Parties
) -> None:
    u = await make_user(pool, settings, university=None, graduation_year=None, email=None)
    missing = ["email", "university", "graduationYear"]
    r = await api.post("/api/gigs", json=gig_body(), headers=u.headers)
    assert r.status == 422
    error = (await r.json())["error"]
    assert error["code"] == "unprocessable"
    assert error["details"] == {"reason": "profile_incomplete", "missing": missing}
    assert "graduationYear" in error["message"]
    assert await pool.fetchval("SELECT count(*) FROM gigs WHERE client_id = $1", u.id) == 0

    r = await api.post("/api/gigs", json=gig_body(), headers=parties.client.headers)
    gig = (await r.json())["data"]
    apply = {"proposal": "I can do it well.", "bidAmount": 60_000}
    r = await api.post(f"/api/gigs/{gig['id']}/applications", json=apply, headers=u.headers)
    assert r.status == 422
    assert (await r.json())["error"]["details"]["missing"] == missing
    assert await pool.fetchval("SELECT applications_count FROM gigs WHERE id = $1", gig["id"]) == 0

    bank = await pool.fetchval(
        "INSERT INTO bank_accounts (user_id, holder_name, ifsc, last4, number_hash, fund_account_id, status)"
        " VALUES ($1, 'U', 'HDFC0001234', '1234', 'h', 'fa_x', 'verified') RETURNING id::text",
        u.id,
    )
    r = await api.post("/api/wallet/withdraw", json={"amount": 100, "bankAccountId": bank}, headers=idem(u))
    assert r.status == 422
    assert (await r.json())["error"]["details"]["reason"] == "profile_incomplete"

    # Completing the profile lifts the refusal.
    fill = {"email": "complete@example.edu", "university": "IIT", "graduationYear": 2027}
    r = await api.patch("/api/users/me", json=fill, headers=u.headers)
    assert (await r.json())["data"]["profileComplete"] is True
    r = await api.post(f"/api/gigs/{gig['id']}/applications", json=apply, headers=u.headers)
    assert r.status == 201


async def test_unverified_phone_cannot_open_pay_or_withdraw(
    api: TestClient[Any, Any], pool: asyncpg.Pool, settings: Settings, parties: Parties
) -> None:
    c = await make_user(pool, settings, phone_verified=False)
    d = parties.doer
    r = await api.post("/api/gigs", json=gig_body(), headers=c.headers)
    assert r.status == 201  # posting a gig moves no money
    gig = (await r.json())["data"]
    r = await api.post(
        f"/api/gigs/{gig['id']}/applications",
        json={"proposal": "I can do it well.", "bidAmount": 60_000},
        headers=d.headers,
    )
    app_id = (await r.json())["data"]["id"]
    r = await api.post(f"/api/applications/{app_id}/accept", headers=c.headers)
    assert r.status == 403
    assert (await r.json())["error"]["details"] == {"reason": "phone_unverified"}
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE gig_id = $1", gig["id"]) == 0
    assert await pool.fetchval("SELECT status FROM applications WHERE id = $1", app_id) == "pending"

    order_id = await new_order(pool, c, d)
    r = await api.post("/api/payments/create-order", json={"orderId": order_id}, headers=idem(c))
    assert r.status == 403
    assert (await r.json())["error"]["details"] == {"reason": "phone_unverified"}
    assert await pool.fetchval("SELECT payment_gateway_order_id FROM orders WHERE id = $1", order_id) is None

    bank = await pool.fetchval(
        "INSERT INTO bank_accounts (user_id, holder_name, ifsc, last4, number_hash, fund_account_id, status)"
        " VALUES ($1, 'U', 'HDFC0001234', '1234', 'h', 'fa_x', 'verified') RETURNING id::text",
        c.id,
    )
    r = await api.post("/api/wallet/withdraw", json={"amount": 100, "bankAccountId": bank}, headers=idem(c))
    assert r.status == 403
    assert await pool.fetchval("SELECT count(*) FROM withdrawals WHERE user_id = $1", c.id) == 0
