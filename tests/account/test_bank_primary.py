"""bankAccountId: the primary verified bank account, kept through verification, primary changes and
removal, over REST against the fake Razorpay."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.factories import TestUser
from tests.money.conftest import FakeRazorpay, Parties, idem


async def _add(api: TestClient[Any, Any], user: TestUser, number: str) -> str:
    account = {"holderName": "Doer", "ifsc": "HDFC0001234", "accountNumber": number}
    r = await api.post("/api/bank-accounts", json=account, headers=idem(user))
    assert r.status == 201, await r.text()
    return str((await r.json())["data"]["id"])


async def _me(api: TestClient[Any, Any], user: TestUser) -> Any:
    r = await api.get("/api/users/me", headers=user.headers)
    return (await r.json())["data"]["bankAccountId"]


async def test_primary_follows_verification_choice_and_removal(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    d = parties.doer
    first = await _add(api, d, "111122223333")
    assert await _me(api, d) is None  # unverified: not primary
    r = await api.post(f"/api/bank-accounts/{first}/primary", headers=d.headers)
    assert r.status == 409
    assert (await r.json())["error"]["details"] == {"status": "unverified"}

    r = await api.post(f"/api/bank-accounts/{first}/verify", headers=idem(d))
    assert (await r.json())["data"]["status"] == "verified"
    assert await _me(api, d) == first

    second = await _add(api, d, "444455556666")
    r = await api.post(f"/api/bank-accounts/{second}/verify", headers=idem(d))
    assert (await r.json())["data"]["status"] == "verified"
    assert await _me(api, d) == first  # a later verification leaves the primary alone

    r = await api.post(f"/api/bank-accounts/{second}/primary", headers=d.headers)
    assert r.status == 200
    assert (await r.json())["data"]["bankAccountId"] == second

    # Removing a non-primary account changes nothing; removing the primary moves it on, then clears it.
    r = await api.delete(f"/api/bank-accounts/{first}", headers=idem(d))
    assert r.status == 200
    assert await _me(api, d) == second
    third = await _add(api, d, "777788889999")
    r = await api.post(f"/api/bank-accounts/{third}/verify", headers=idem(d))
    first_again = await _add(api, d, "111122223333")
    razorpay.validation_active = False
    r = await api.post(f"/api/bank-accounts/{first_again}/verify", headers=idem(d))
    assert (await r.json())["data"]["status"] == "failed"
    r = await api.delete(f"/api/bank-accounts/{second}", headers=idem(d))
    assert await _me(api, d) == third  # the oldest other verified one, not the failed one
    r = await api.delete(f"/api/bank-accounts/{third}", headers=idem(d))
    assert await _me(api, d) is None


async def test_primary_refuses_strangers_and_others_accounts(
    api: TestClient[Any, Any], parties: Parties
) -> None:
    d, s = parties.doer, parties.stranger
    account = await _add(api, d, "121212121212")
    await api.post(f"/api/bank-accounts/{account}/verify", headers=idem(d))
    r = await api.post(f"/api/bank-accounts/{account}/primary")
    assert r.status == 401
    r = await api.post(f"/api/bank-accounts/{account}/primary", headers=s.headers)
    assert r.status == 404
    assert await _me(api, s) is None
    r = await api.post("/api/bank-accounts/not-a-uuid/primary", headers=d.headers)
    assert r.status == 404


async def test_validation_by_webhook_sets_the_primary(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties
) -> None:
    from tests.money.conftest import webhook

    d = parties.doer
    bank_id = await _add(api, d, "999988887777")
    fund_account = await pool.fetchval("SELECT fund_account_id FROM bank_accounts WHERE id = $1", bank_id)
    entity = {"id": "fav_9", "fund_account": {"id": fund_account}, "results": {"account_status": "active"}}
    body, headers = webhook("fund_account.validation.completed", "fund_account.validation", entity)
    r = await api.post("/api/webhooks/payment", data=body, headers=headers)
    assert (await r.json())["data"]["outcome"] == "verified"
    assert await _me(api, d) == bank_id
