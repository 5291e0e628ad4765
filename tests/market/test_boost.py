"""POST /api/gigs/{id}/boost: the owner's wallet charged once per Idempotency-Key through the ledger,
refused when short, boosted_until moved forward and extended."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from domain import ledger
from rest.gig_boost import BOOST_PRICE_PER_DAY
from tests.factories import TestUser
from tests.market.conftest import DAY_MS, create_gig, fund_wallet, future_ms, gig_row


async def wallet(pool: asyncpg.Pool, user: TestUser) -> int:
    return await ledger.balance(pool, ledger.wallet_account(user.id, "INR"))


async def boost_charges(pool: asyncpg.Pool, gig_id: str) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM ledger_transfers WHERE kind = 'gig_boost' AND reference LIKE $1 || ':%'", gig_id
    )
    return count


async def test_boost_charges_once_per_key(client: Any, pool: asyncpg.Pool, owner: TestUser) -> None:
    await fund_wallet(pool, owner, 10 * BOOST_PRICE_PER_DAY)
    gig = await create_gig(client, owner)
    headers = {**owner.headers, "Idempotency-Key": "boost-1"}
    url = f"/api/gigs/{gig['id']}/boost"
    first = await client.post(url, json={"days": 3}, headers=headers)
    body = await first.json()
    assert first.status == 200, body
    assert body["data"]["charge"] == {"amount": 3 * BOOST_PRICE_PER_DAY, "currency": "INR", "days": 3}
    boosted = body["data"]["gig"]
    assert boosted["isBoosted"] is True
    assert future_ms(3) - 60_000 < boosted["boostedUntil"] <= future_ms(3)
    assert await wallet(pool, owner) == 7 * BOOST_PRICE_PER_DAY
    # the same key again, sequentially and concurrently: the first answer, no second charge
    again = await client.post(url, json={"days": 3}, headers=headers)
    assert again.status == 200
    assert (await again.json()) == body
    repeats = await asyncio.gather(*(client.post(url, json={"days": 3}, headers=headers) for _ in range(4)))
    assert {r.status for r in repeats} <= {200, 409}
    assert await wallet(pool, owner) == 7 * BOOST_PRICE_PER_DAY
    assert await boost_charges(pool, gig["id"]) == 1
    assert await ledger.audit(pool) == []
    # a new key extends the running boost
    resp = await client.post(url, json={"days": 2}, headers={**owner.headers, "Idempotency-Key": "boost-2"})
    assert resp.status == 200
    extended = (await resp.json())["data"]["gig"]["boostedUntil"]
    assert abs(extended - (boosted["boostedUntil"] + 2 * DAY_MS)) < 5_000
    assert await wallet(pool, owner) == 5 * BOOST_PRICE_PER_DAY


async def test_boost_refused_when_the_wallet_is_short(
    client: Any, pool: asyncpg.Pool, owner: TestUser
) -> None:
    await fund_wallet(pool, owner, BOOST_PRICE_PER_DAY)
    gig = await create_gig(client, owner)
    resp = await client.post(
        f"/api/gigs/{gig['id']}/boost",
        json={"days": 2},
        headers={**owner.headers, "Idempotency-Key": "short"},
    )
    body = await resp.json()
    assert resp.status == 409, body
    assert body["error"]["details"]["reason"] == "insufficient_funds"
    assert await wallet(pool, owner) == BOOST_PRICE_PER_DAY
    assert (await gig_row(pool, gig["id"]) or {})["boosted_until"] is None
    assert await boost_charges(pool, gig["id"]) == 0


async def test_boost_bad_input_changes_nothing(client: Any, pool: asyncpg.Pool, owner: TestUser) -> None:
    await fund_wallet(pool, owner, 100 * BOOST_PRICE_PER_DAY)
    gig = await create_gig(client, owner)
    url = f"/api/gigs/{gig['id']}/boost"
    cases: list[tuple[Any, dict[str, str], int]] = [
        ({"days": 1}, owner.headers, 400),  # no Idempotency-Key
        ({"days": 0}, {**owner.headers, "Idempotency-Key": "a"}, 400),
        ({"days": 31}, {**owner.headers, "Idempotency-Key": "b"}, 400),
        ({"days": "2"}, {**owner.headers, "Idempotency-Key": "c"}, 400),
        ({}, {**owner.headers, "Idempotency-Key": "d"}, 400),
        ({"days": 1, "price": 0}, {**owner.headers, "Idempotency-Key": "e"}, 400),
    ]
    for body, headers, status in cases:
        resp = await client.post(url, json=body, headers=headers)
        assert resp.status == status, (body, await resp.json())
    await client.post(f"/api/gigs/{gig['id']}/close", headers=owner.headers)
    closed = await client.post(url, json={"days": 1}, headers={**owner.headers, "Idempotency-Key": "f"})
    assert closed.status == 409
    assert await wallet(pool, owner) == 100 * BOOST_PRICE_PER_DAY
    assert (await gig_row(pool, gig["id"]) or {})["boosted_until"] is None
    # a key reused for a different body is refused
    await client.post(f"/api/gigs/{gig['id']}/reopen", headers=owner.headers)
    ok = await client.post(url, json={"days": 1}, headers={**owner.headers, "Idempotency-Key": "g"})
    assert ok.status == 200
    other = await client.post(url, json={"days": 2}, headers={**owner.headers, "Idempotency-Key": "g"})
    assert other.status == 422
    assert await wallet(pool, owner) == 99 * BOOST_PRICE_PER_DAY


async def sweep_key(pool: asyncpg.Pool, key: str) -> None:
    """Age the key's record past the retention and run the housekeeping sweep that deletes it."""
    from workers.housekeeping import Housekeeping
    from workers.metrics import WorkerMetrics

    await pool.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = $1", key
    )
    await Housekeeping(pool, WorkerMetrics(), idempotency_retention_s=86400).sweep()
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = $1", key) == 0


async def test_a_key_reused_after_retention_is_a_new_boost(
    client: Any, pool: asyncpg.Pool, owner: TestUser
) -> None:
    """Issue 13 defect 6: was a 500 (the ledger refused `gig_boost:<gig>:<key>` a second time)."""
    await fund_wallet(pool, owner, 10 * BOOST_PRICE_PER_DAY)
    gig = await create_gig(client, owner)
    url = f"/api/gigs/{gig['id']}/boost"
    headers = {**owner.headers, "Idempotency-Key": "boost-reused"}
    first = await client.post(url, json={"days": 1}, headers=headers)
    assert first.status == 200, await first.text()
    await sweep_key(pool, "boost-reused")
    again = await client.post(url, json={"days": 1}, headers=headers)
    assert again.status == 200, await again.text()
    assert "Idempotent-Replayed" not in again.headers
    assert await boost_charges(pool, gig["id"]) == 2
    assert await wallet(pool, owner) == 8 * BOOST_PRICE_PER_DAY
    # ...and that new boost replays like any other while its record lives
    replay = await client.post(url, json={"days": 1}, headers=headers)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert await boost_charges(pool, gig["id"]) == 2
    assert await ledger.audit(pool) == []


async def test_a_boost_retried_after_failing_past_its_charge_is_charged_once(
    client: Any, pool: asyncpg.Pool, owner: TestUser, monkeypatch: Any
) -> None:
    """The failed attempt's record is released, not deleted: the retry keeps its id, finds the charge
    it made and answers the boost without charging again."""
    import rest.gig_boost

    await fund_wallet(pool, owner, 10 * BOOST_PRICE_PER_DAY)
    gig = await create_gig(client, owner)
    url = f"/api/gigs/{gig['id']}/boost"
    headers = {**owner.headers, "Idempotency-Key": "boost-retried"}
    real = rest.gig_boost.load_gig
    broken = {"left": 1}

    def load_failing_once(row: Any) -> Any:
        if broken["left"]:
            broken["left"] -= 1
            raise RuntimeError("answering failed after the commit")
        return real(row)

    monkeypatch.setattr(rest.gig_boost, "load_gig", load_failing_once)
    failed = await client.post(url, json={"days": 2}, headers=headers)
    assert failed.status == 500
    retry = await client.post(url, json={"days": 2}, headers=headers)
    assert retry.status == 200, await retry.text()
    data = (await retry.json())["data"]
    assert data["charge"] == {"amount": 2 * BOOST_PRICE_PER_DAY, "currency": "INR", "days": 2}
    assert data["gig"]["isBoosted"] is True
    assert await boost_charges(pool, gig["id"]) == 1
    assert await wallet(pool, owner) == 8 * BOOST_PRICE_PER_DAY
    # the released key does not take another body
    other = await client.post(url, json={"days": 3}, headers=headers)
    assert other.status == 422
