"""The payout sweep: a withdrawal left `pending` (the gateway's answer was lost, or the process died
before asking) is asked for again once it is PAYOUT_RETRY_AFTER_S old, and a definite answer
settles it exactly as the withdraw handler would."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from domain.gateways import gateway_for
from hub.settings import Settings, SettingsError
from tests.money.conftest import FakeRazorpay, Parties, idem
from tests.money.test_money_fixes import _wallet_with_bank
from workers.metrics import WorkerMetrics
from workers.timers import Timers

DAY = 86400.0


def _payouts(razorpay: FakeRazorpay, withdrawal_id: str) -> list[dict[str, Any]]:
    return [b for m, p, b in razorpay.calls if p == "/v1/payouts" and b["reference_id"] == withdrawal_id]


def _timers(pool: asyncpg.Pool, settings: Settings) -> Timers:
    return Timers(
        pool,
        WorkerMetrics(),
        auto_approve_s=365 * DAY,
        unpaid_expire_s=365 * DAY,
        gateway=gateway_for(settings),
    )


async def _stuck_withdrawal(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> str:
    """A 30 000 withdrawal whose payout was answered 504 (outcome unknown): pending, 60 000 left."""
    bank_id = await _wallet_with_bank(api, pool, parties)
    razorpay.fail["/v1/payouts"] = 504
    r = await api.post(
        "/api/wallet/withdraw", json={"amount": 30_000, "bankAccountId": bank_id}, headers=idem(parties.doer)
    )
    assert r.status == 201, await r.text()
    data = (await r.json())["data"]
    assert (data["status"], data["payoutId"]) == ("pending", None)
    razorpay.fail.clear()
    return str(data["id"])


async def _age(pool: asyncpg.Pool, withdrawal_id: str, seconds: float = 600) -> None:
    await pool.execute(
        "UPDATE withdrawals SET updated_at = now() - make_interval(secs => $2) WHERE id = $1",
        withdrawal_id,
        seconds,
    )


async def _row(pool: asyncpg.Pool, withdrawal_id: str) -> Any:
    return await pool.fetchrow("SELECT status, payout_id FROM withdrawals WHERE id = $1", withdrawal_id)


async def test_stuck_withdrawal_is_paid_out_once_when_old_enough(
    api: TestClient[Any, Any],
    pool: asyncpg.Pool,
    parties: Parties,
    razorpay: FakeRazorpay,
    money_settings: Settings,
) -> None:
    withdrawal_id = await _stuck_withdrawal(api, pool, parties, razorpay)
    timers = _timers(pool, money_settings)
    # Not old enough yet: not asked again.
    await timers.sweep()
    assert len(_payouts(razorpay, withdrawal_id)) == 1
    assert (await _row(pool, withdrawal_id))["status"] == "pending"

    await _age(pool, withdrawal_id)
    moved = await timers.sweep()
    assert moved["payout"] >= 1
    asked = _payouts(razorpay, withdrawal_id)
    assert len(asked) == 2 and asked[1]["amount"] == 30_000
    row = await _row(pool, withdrawal_id)
    assert row["status"] == "processing" and row["payout_id"].startswith("pout_")
    assert await pool.fetchval("SELECT wallet_balance FROM users WHERE id = $1", parties.doer.id) == 60_000
    # Settled: later sweeps, however old it gets, never ask again.
    await _age(pool, withdrawal_id)
    await timers.sweep_payouts(gateway_for(money_settings))
    assert len(_payouts(razorpay, withdrawal_id)) == 2


async def test_definite_refusal_on_retry_returns_the_money_once(
    api: TestClient[Any, Any],
    pool: asyncpg.Pool,
    parties: Parties,
    razorpay: FakeRazorpay,
    money_settings: Settings,
) -> None:
    withdrawal_id = await _stuck_withdrawal(api, pool, parties, razorpay)
    await _age(pool, withdrawal_id)
    razorpay.fail["/v1/payouts"] = 400
    timers = _timers(pool, money_settings)
    await timers.sweep_payouts(gateway_for(money_settings))
    assert (await _row(pool, withdrawal_id))["status"] == "failed"
    assert await pool.fetchval("SELECT wallet_balance FROM users WHERE id = $1", parties.doer.id) == 90_000
    await _age(pool, withdrawal_id)
    await timers.sweep_payouts(gateway_for(money_settings))
    reversals = await pool.fetchval(
        "SELECT count(*) FROM ledger_transfers WHERE kind = 'payout_reversal' AND reference = $1",
        withdrawal_id,
    )
    assert reversals == 1
    assert len(_payouts(razorpay, withdrawal_id)) == 2


async def test_still_unknown_waits_another_period_then_settles(
    api: TestClient[Any, Any],
    pool: asyncpg.Pool,
    parties: Parties,
    razorpay: FakeRazorpay,
    money_settings: Settings,
) -> None:
    withdrawal_id = await _stuck_withdrawal(api, pool, parties, razorpay)
    await _age(pool, withdrawal_id)
    razorpay.fail["/v1/payouts"] = 503
    timers = _timers(pool, money_settings)
    gateway = gateway_for(money_settings)
    await timers.sweep_payouts(gateway)
    await timers.sweep_payouts(gateway)  # just asked: not again in the same period
    assert len(_payouts(razorpay, withdrawal_id)) == 2
    assert (await _row(pool, withdrawal_id))["status"] == "pending"
    assert await pool.fetchval("SELECT wallet_balance FROM users WHERE id = $1", parties.doer.id) == 60_000

    razorpay.fail.clear()
    razorpay.payout_status = "processed"
    await _age(pool, withdrawal_id)
    await timers.sweep_payouts(gateway)
    assert (await _row(pool, withdrawal_id))["status"] == "processed"
    assert len(_payouts(razorpay, withdrawal_id)) == 3


async def test_withdrawal_never_asked_for_is_asked_for(
    api: TestClient[Any, Any],
    pool: asyncpg.Pool,
    parties: Parties,
    razorpay: FakeRazorpay,
    money_settings: Settings,
) -> None:
    """The process died after committing the withdrawal, before asking for its payout."""
    withdrawal_id = await _stuck_withdrawal(api, pool, parties, razorpay)
    razorpay.calls.clear()  # as if the first request never went out
    await _age(pool, withdrawal_id)
    await _timers(pool, money_settings).sweep_payouts(gateway_for(money_settings))
    assert len(_payouts(razorpay, withdrawal_id)) == 1
    assert (await _row(pool, withdrawal_id))["status"] == "processing"


async def test_sweeps_side_by_side_ask_once(
    api: TestClient[Any, Any],
    pool: asyncpg.Pool,
    parties: Parties,
    razorpay: FakeRazorpay,
    money_settings: Settings,
) -> None:
    withdrawal_id = await _stuck_withdrawal(api, pool, parties, razorpay)
    await _age(pool, withdrawal_id)
    razorpay.fail["/v1/payouts"] = 504  # still no answer: each sweep must leave it to the next period
    sweeps = [_timers(pool, money_settings) for _ in range(3)]
    await asyncio.gather(*(t.sweep_payouts(gateway_for(money_settings)) for t in sweeps))
    assert len(_payouts(razorpay, withdrawal_id)) == 2  # the withdraw's own, then one retry
    assert (await _row(pool, withdrawal_id))["status"] == "pending"


def test_payout_retry_setting(tmp_path: Any) -> None:
    base = {"GIGWIRE_DATA_DIR": str(tmp_path)}
    assert Settings.from_env(base).payout_retry_s == 300.0
    assert Settings.from_env({**base, "PAYOUT_RETRY_AFTER_S": "60"}).payout_retry_s == 60.0
    for bad in ("0", "soon", "-5"):
        with pytest.raises(SettingsError, match="PAYOUT_RETRY_AFTER_S"):
            Settings.from_env({**base, "PAYOUT_RETRY_AFTER_S": bad})
