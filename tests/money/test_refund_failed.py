"""A refund the gateway fails (issue 13, defect 3): the signed refund.failed webhook records it and
books the money as owed to the client (clearing -> refunds_pending), the timers retry it until the
gateway accepts one, a processed refund settles it once, and after REFUND_MAX_ATTEMPTS it waits for
an admin (GET /api/admin/refunds, POST .../retry). The gateway timing out, answering 5xx or twice
during a retry never refunds twice nor books twice; the ledger audit holds at every step."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import domain.gateway_razorpay
from domain import ledger
from domain.gateways import gateway_for
from hub.settings import Settings, SettingsError
from tests.money.conftest import FakeRazorpay, Parties, act, checkout, idem, new_order, paid_order, webhook
from workers.metrics import WorkerMetrics
from workers.timers import Timers

DAY = 86400.0


@dataclass
class HoldingRazorpay(FakeRazorpay):
    """The fake Razorpay whose refund requests can be held after the refund is made and before the
    answer goes out (`post_hold`): a refund the gateway made while its client gave up waiting; and
    whose new refunds may be answered with another status than pending (`refund_status`)."""

    post_hold: asyncio.Event | None = None
    refund_status: str = "pending"

    async def _refund(self, request: web.Request) -> web.StreamResponse:
        response = await super()._refund(request)
        if self.refund_status != "pending":
            made = self.refunds[request.match_info["id"]][-1]
            made["status"] = self.refund_status
            response = web.json_response({k: v for k, v in made.items() if k != "hidden"})
        if self.post_hold is not None:
            await self.post_hold.wait()
        return response


@pytest.fixture
async def razorpay(aiohttp_server: Callable[..., Any]) -> HoldingRazorpay:
    fake = HoldingRazorpay()
    server: TestServer = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


@dataclass
class Refunded:
    order_id: str
    payment_id: str
    row_id: str


def _posts(razorpay: FakeRazorpay, payment_id: str) -> list[dict[str, Any]]:
    return [b for m, p, b in razorpay.calls if (m, p) == ("POST", f"/v1/payments/{payment_id}/refund")]


def _live_refunds(razorpay: FakeRazorpay, payment_id: str) -> list[dict[str, Any]]:
    """The refunds the gateway holds that give (or will give) money back."""
    return [r for r in razorpay.refunds.get(payment_id, []) if r["status"] != "failed"]


def _timers(pool: asyncpg.Pool, settings: Settings, metrics: WorkerMetrics | None = None) -> Timers:
    return Timers(
        pool,
        metrics or WorkerMetrics(),
        auto_approve_s=365 * DAY,
        unpaid_expire_s=365 * DAY,
        gateway=gateway_for(settings),
        refund_retry_s=600,
        refund_max_attempts=3,
    )


async def _cancelled(api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties) -> Refunded:
    """A funded 100 000 order cancelled by its client: its refund is initiated at the gateway."""
    order_id = await paid_order(api, pool, parties.client, parties.doer)
    status, body = await act(api, parties.client, order_id, "cancel")
    assert status == 200, body
    row = await pool.fetchrow(
        "SELECT id::text, payment_id FROM gateway_refunds WHERE order_id = $1", order_id
    )
    return Refunded(order_id, row["payment_id"], row["id"])


async def _event(
    api: TestClient[Any, Any], razorpay: FakeRazorpay, kind: str, payment_id: str, refund_id: str
) -> str:
    """The gateway settles `refund_id` as `kind` (processed | failed) and sends its signed webhook,
    with a fresh event id; the outcome."""
    for r in razorpay.refunds.get(payment_id, []):
        if r["id"] == refund_id:
            r["status"] = kind
    entity = {"id": refund_id, "payment_id": payment_id, "amount": 100_000, "status": kind}
    if kind == "failed":
        entity["failure_reason"] = "the bank refused the credit"
    body, headers = webhook(f"refund.{kind}", "refund", entity, "evt_" + secrets.token_hex(6))
    r = await api.post("/api/webhooks/payment", data=body, headers=headers)
    assert r.status == 200, await r.text()
    return str((await r.json())["data"]["outcome"])


async def _row(pool: asyncpg.Pool, row_id: str) -> Any:
    return await pool.fetchrow("SELECT * FROM gateway_refunds WHERE id = $1", row_id)


async def _moves(pool: asyncpg.Pool, order_id: str) -> list[str]:
    rows = await pool.fetch("SELECT kind FROM ledger_transfers WHERE order_id = $1 ORDER BY id", order_id)
    return [r["kind"] for r in rows]


async def _events(pool: asyncpg.Pool, user_id: str, order_id: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT data->>'event' AS event FROM notifications WHERE user_id = $1 AND data->>'orderId' = $2"
        " AND data->>'event' LIKE 'refund%' ORDER BY created_at",
        user_id,
        order_id,
    )
    return [r["event"] for r in rows]


async def _clean(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await ledger.audit(conn) == []


async def _age(pool: asyncpg.Pool, row_id: str) -> None:
    await pool.execute(
        "UPDATE gateway_refunds SET updated_at = now() - interval '1 hour' WHERE id = $1", row_id
    )


async def _failed(api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: Any) -> Refunded:
    """A cancelled order whose refund the gateway failed (recorded, owed), aged past the retry."""
    refunded = await _cancelled(api, pool, parties)
    first = razorpay.refunds[refunded.payment_id][0]["id"]
    assert await _event(api, razorpay, "failed", refunded.payment_id, first) == "refund_failed"
    await _age(pool, refunded.row_id)
    return refunded


@pytest.mark.parametrize("before", ["initiated", "processed"])
async def test_failed_refund_is_recorded_owed_and_told(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: HoldingRazorpay, before: str
) -> None:
    refunded = await _cancelled(api, pool, parties)
    pid, first = refunded.payment_id, razorpay.refunds[refunded.payment_id][0]["id"]
    if before == "processed":  # the case: the row said processed when the failure came
        assert await _event(api, razorpay, "processed", pid, first) == "refund_processed"
    await _clean(pool)

    assert await _event(api, razorpay, "failed", pid, first) == "refund_failed"
    row = await _row(pool, refunded.row_id)
    assert (row["status"], row["owed"], row["attempts"]) == ("failed", True, 1)
    assert row["failure_reason"] == "the bank refused the credit"
    # The ledger says where the money is: gateway clearing -> refunds pending, owed to the client.
    transfer = await pool.fetchrow(
        "SELECT debit_account, credit_account, amount FROM ledger_transfers"
        " WHERE order_id = $1 AND kind = 'refund_failed'",
        refunded.order_id,
    )
    assert tuple(transfer) == ("platform:clearing:INR", "platform:refunds_pending:INR", 100_000)
    await _clean(pool)
    told = await _events(pool, parties.client.id, refunded.order_id)
    assert told.count("refund_failed") == 1
    state = await pool.fetchrow("SELECT status, escrow_state FROM orders WHERE id = $1", refunded.order_id)
    assert tuple(state) == ("cancelled", "refunded")

    # Said again (a new event id), or of an unknown refund: nothing more moves, nobody hears again.
    assert await _event(api, razorpay, "failed", pid, first) == "stale"
    assert await _event(api, razorpay, "failed", pid, "rfnd_unknown") == "stale"
    assert await _moves(pool, refunded.order_id) == ["fund", "refund", "refund_failed"]
    assert (await _events(pool, parties.client.id, refunded.order_id)).count("refund_failed") == 1
    await _clean(pool)


async def test_timer_retry_succeeds_and_settles_once(
    api: TestClient[Any, Any],
    pool: asyncpg.Pool,
    parties: Parties,
    razorpay: HoldingRazorpay,
    money_settings: Settings,
) -> None:
    refunded = await _cancelled(api, pool, parties)
    pid = refunded.payment_id
    first = razorpay.refunds[pid][0]["id"]
    assert await _event(api, razorpay, "failed", pid, first) == "refund_failed"
    timers = _timers(pool, money_settings)
    gateway = gateway_for(money_settings)

    assert await timers.sweep_refunds(gateway) == 0  # not due yet
    assert len(_posts(razorpay, pid)) == 1
    await _age(pool, refunded.row_id)
    assert (await timers.sweep())["refund"] == 1
    posts = _posts(razorpay, pid)
    assert len(posts) == 2 and posts[1]["amount"] == 100_000
    assert posts[1]["receipt"] == f"rf_{refunded.row_id.replace('-', '')}_2"
    second = razorpay.refunds[pid][1]["id"]
    row = await _row(pool, refunded.row_id)
    assert (row["status"], row["owed"], row["attempts"]) == ("initiated", True, 2)
    assert (row["gateway_refund_id"], row["previous_refund_ids"]) == (second, [first])
    await _clean(pool)

    assert await _event(api, razorpay, "processed", pid, second) == "refund_processed"
    assert await _event(api, razorpay, "processed", pid, second) == "stale"
    row = await _row(pool, refunded.row_id)
    assert (row["status"], row["owed"]) == ("processed", False)
    assert await _moves(pool, refunded.order_id) == ["fund", "refund", "refund_failed", "refund_settled"]
    settled = await pool.fetchrow(
        "SELECT debit_account, credit_account FROM ledger_transfers WHERE order_id = $1"
        " AND kind = 'refund_settled'",
        refunded.order_id,
    )
    assert tuple(settled) == ("platform:refunds_pending:INR", "platform:clearing:INR")
    assert await _events(pool, parties.client.id, refunded.order_id) == ["refund_failed", "refund_processed"]
    await _clean(pool)
    # Settled: however old it gets, no sweep asks again.
    await _age(pool, refunded.row_id)
    await timers.sweep_refunds(gateway)
    assert len(_posts(razorpay, pid)) == 2


@pytest.mark.parametrize("fault", ["timeout", "5xx", "twice"])
async def test_gateway_fault_during_retry_never_refunds_or_books_twice(
    api: TestClient[Any, Any],
    pool: asyncpg.Pool,
    parties: Parties,
    razorpay: HoldingRazorpay,
    money_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    refunded = await _failed(api, pool, parties, razorpay)
    pid = refunded.payment_id
    gateway = gateway_for(money_settings)
    if fault == "timeout":
        # The gateway makes the refund but the answer never comes in time, and the listing after
        # it does not show it yet: no definite answer, the attempt counted, nothing booked.
        monkeypatch.setattr(domain.gateway_razorpay, "_TIMEOUT", aiohttp.ClientTimeout(total=0.5))
        razorpay.post_hold, razorpay.hide_refunds = asyncio.Event(), True
        assert await _timers(pool, money_settings).sweep_refunds(gateway) == 0
        razorpay.post_hold.set()
        row = await _row(pool, refunded.row_id)
        assert (row["status"], row["owed"], row["attempts"]) == ("failed", True, 2)
        assert len(_live_refunds(razorpay, pid)) == 1
        await _clean(pool)
        # The next retry finds the refund made and uses it: nothing asked again.
        razorpay.hide_refunds = False
        await _age(pool, refunded.row_id)
        assert await _timers(pool, money_settings).sweep_refunds(gateway) == 1
        assert len(_posts(razorpay, pid)) == 2
    elif fault == "5xx":
        # Made, answered 503: the listing after it finds the refund and uses it.
        razorpay.fail_after["POST /v1/payments"] = 503
        assert await _timers(pool, money_settings).sweep_refunds(gateway) == 1
        assert len(_posts(razorpay, pid)) == 2
    else:
        # Three sweeps and an admin's retry at once, then the processed webhook twice below.
        sweeps = [_timers(pool, money_settings).sweep_refunds(gateway) for _ in range(3)]
        retry = api.post(f"/api/admin/refunds/{refunded.row_id}/retry", headers=idem(parties.admin))
        results = await asyncio.gather(*sweeps, retry)
        assert sum(results[:3]) + (results[3].status == 200) == 1
        assert results[3].status in (200, 409)
        assert len(_posts(razorpay, pid)) == 2
    await _clean(pool)
    (live,) = _live_refunds(razorpay, pid)
    row = await _row(pool, refunded.row_id)
    assert (row["status"], row["owed"], row["gateway_refund_id"]) == ("initiated", True, live["id"])

    assert await _event(api, razorpay, "processed", pid, live["id"]) == "refund_processed"
    assert await _event(api, razorpay, "processed", pid, live["id"]) == "stale"
    assert await _moves(pool, refunded.order_id) == ["fund", "refund", "refund_failed", "refund_settled"]
    assert (await _row(pool, refunded.row_id))["status"] == "processed"
    assert len(_live_refunds(razorpay, pid)) == 1
    await _clean(pool)


async def test_after_max_attempts_it_needs_attention_and_admins_see_it(
    api: TestClient[Any, Any],
    pool: asyncpg.Pool,
    parties: Parties,
    razorpay: HoldingRazorpay,
    money_settings: Settings,
) -> None:
    refunded = await _failed(api, pool, parties, razorpay)
    pid, admin = refunded.payment_id, parties.admin
    metrics = WorkerMetrics()
    timers = _timers(pool, money_settings, metrics)  # REFUND_MAX_ATTEMPTS 3
    gateway = gateway_for(money_settings)

    # Attempt 2 is accepted, then fails too: still owed once, the client not told again.
    assert await timers.sweep_refunds(gateway) == 1
    second = razorpay.refunds[pid][1]["id"]
    assert await _event(api, razorpay, "failed", pid, second) == "refund_failed"
    assert await _moves(pool, refunded.order_id) == ["fund", "refund", "refund_failed"]
    assert (await _events(pool, parties.client.id, refunded.order_id)).count("refund_failed") == 1
    # Attempt 3 is refused: that was the last; the admins get it.
    razorpay.fail["POST /v1/payments"] = 400
    await _age(pool, refunded.row_id)
    assert await timers.sweep_refunds(gateway) == 0
    row = await _row(pool, refunded.row_id)
    assert (row["status"], row["owed"], row["attempts"]) == ("needs_attention", True, 3)
    assert metrics.registry.get_sample_value("gigwire_refunds_needs_attention_total") == 1
    await _age(pool, refunded.row_id)
    await timers.sweep_refunds(gateway)
    assert len(_posts(razorpay, pid)) == 3
    await _clean(pool)

    for status in ("failed", "needs_attention"):
        r = await api.get(f"/api/admin/refunds?status={status}&limit=200", headers=admin.headers)
        assert r.status == 200, await r.text()
        listed = {i["id"]: i for i in (await r.json())["data"]}
        item = listed[refunded.row_id]
        assert (item["orderId"], item["clientId"], item["status"]) == (
            refunded.order_id,
            parties.client.id,
            "needs_attention",
        )
        assert (item["owed"], item["attempts"], item["amount"]) == (True, 3, 100_000)
    r = await api.get("/api/admin/refunds", headers=admin.headers)  # default: failed
    assert refunded.row_id in {i["id"] for i in (await r.json())["data"]}

    # An admin retries once the gateway works again; the processed webhook settles it.
    razorpay.fail.clear()
    r = await api.post(f"/api/admin/refunds/{refunded.row_id}/retry", headers=admin.headers)
    assert r.status == 200, await r.text()
    body = await r.json()
    assert (body["outcome"], body["data"]["status"], body["data"]["attempts"]) == (
        "initiated",
        "initiated",
        4,
    )
    third = body["data"]["gatewayRefundId"]
    audit = await pool.fetch("SELECT * FROM admin_audit WHERE target_id = $1", refunded.row_id)
    assert [(a["action"], a["after"]["outcome"]) for a in audit] == [("refund.retry", "initiated")]
    assert audit[0]["before"] == {"status": "needs_attention", "attempts": 3}
    third = body["data"]["gatewayRefundId"]
    assert await _event(api, razorpay, "processed", pid, third) == "refund_processed"
    r = await api.get("/api/admin/refunds?status=failed&limit=200", headers=admin.headers)
    assert refunded.row_id not in {i["id"] for i in (await r.json())["data"]}
    r = await api.post(f"/api/admin/refunds/{refunded.row_id}/retry", headers=admin.headers)
    assert r.status == 409 and (await r.json())["error"]["details"]["status"] == "processed"
    assert len(_live_refunds(razorpay, pid)) == 1
    await _clean(pool)


async def test_stray_payment_refund_failed_is_recorded_and_retried(
    api: TestClient[Any, Any],
    pool: asyncpg.Pool,
    parties: Parties,
    razorpay: HoldingRazorpay,
    money_settings: Settings,
) -> None:
    """A payment that came after the cancellation is sent back at once; its refund failing later is
    recorded, owed and retried like an order's own."""
    client = parties.client
    order_id = await new_order(pool, client, parties.doer)
    paid = await checkout(api, client, order_id)
    assert (await act(api, client, order_id, "cancel"))[0] == 200
    r = await api.post("/api/payments/verify", json=paid, headers=idem(client))
    assert r.status == 409, await r.text()
    pid = paid["razorpay_payment_id"]
    row = await pool.fetchrow("SELECT id::text, kind, status FROM gateway_refunds WHERE payment_id = $1", pid)
    assert (row["kind"], row["status"]) == ("stray", "initiated")
    first = razorpay.refunds[pid][0]["id"]
    assert await _event(api, razorpay, "processed", pid, first) == "refund_processed"
    assert await _events(pool, client.id, order_id) == ["refund_processed"]  # told when it was made

    assert await _event(api, razorpay, "failed", pid, first) == "refund_failed"
    refund = await _row(pool, row["id"])
    assert (refund["status"], refund["owed"]) == ("failed", True)
    await _clean(pool)
    await _age(pool, row["id"])
    assert await _timers(pool, money_settings).sweep_refunds(gateway_for(money_settings)) == 1
    second = razorpay.refunds[pid][1]["id"]
    assert await _event(api, razorpay, "processed", pid, second) == "refund_processed"
    assert await _moves(pool, order_id) == [
        "stray_payment",
        "stray_refund",
        "refund_failed",
        "refund_settled",
    ]
    told = await _events(pool, client.id, order_id)
    assert told == ["refund_processed", "refund_failed", "refund_processed"]
    assert len(_live_refunds(razorpay, pid)) == 1
    await _clean(pool)


async def test_odd_refund_events_are_answered_not_failed(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: HoldingRazorpay
) -> None:
    refunded = await _cancelled(api, pool, parties)
    first = razorpay.refunds[refunded.payment_id][0]["id"]
    for entity, outcome in (
        ({"payment_id": refunded.payment_id}, "malformed"),
        ({"id": 7}, "malformed"),
        ({"id": "rfnd_\x00x", "payment_id": refunded.payment_id}, None),
        ({"id": first, "failure_reason": "bank\x00down"}, None),
        ({"id": first, "status_details": "not an object"}, "refund_failed"),
    ):
        body, headers = webhook("refund.failed", "refund", entity, "evt_" + secrets.token_hex(6))
        r = await api.post("/api/webhooks/payment", data=body, headers=headers)
        if outcome is None:  # NUL fits neither jsonb nor text: refused, nothing recorded
            assert (r.status, (await r.json())["error"]["code"]) == (400, "bad_request")
        else:
            assert (r.status, (await r.json())["data"]["outcome"]) == (200, outcome)
    assert (await _row(pool, refunded.row_id))["failure_reason"] == "the gateway failed the refund"
    await _clean(pool)


async def test_refund_failed_at_once_is_recorded(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: HoldingRazorpay
) -> None:
    razorpay.refund_status = "failed"
    refunded = await _cancelled(api, pool, parties)
    row = await _row(pool, refunded.row_id)
    assert (row["status"], row["owed"]) == ("failed", True)
    # One transaction: the failure is booked as the refund is made, before escrow -> clearing.
    assert sorted(await _moves(pool, refunded.order_id)) == ["fund", "refund", "refund_failed"]
    assert await _events(pool, parties.client.id, refunded.order_id) == ["refund_failed"]
    await _clean(pool)


@pytest.mark.parametrize("final", ["processed", "failed"])
async def test_refund_whose_webhook_never_came_is_looked_up(
    api: TestClient[Any, Any],
    pool: asyncpg.Pool,
    parties: Parties,
    razorpay: HoldingRazorpay,
    money_settings: Settings,
    final: str,
) -> None:
    refunded = await _cancelled(api, pool, parties)
    timers, gateway = _timers(pool, money_settings), gateway_for(money_settings)
    assert await timers.check_refunds(gateway) == 0  # not due yet
    await _age(pool, refunded.row_id)
    assert await timers.check_refunds(gateway) == 0  # still pending at the gateway: looked again later
    assert (await _row(pool, refunded.row_id))["status"] == "initiated"
    razorpay.refunds[refunded.payment_id][0]["status"] = final  # and its webhook is lost
    assert await timers.check_refunds(gateway) == 0  # just looked: not before another period
    await _age(pool, refunded.row_id)
    assert await timers.check_refunds(gateway) == 1
    row = await _row(pool, refunded.row_id)
    assert (row["status"], row["owed"]) == (final, final == "failed")
    told = await _events(pool, parties.client.id, refunded.order_id)
    assert told == ["refund_processed" if final == "processed" else "refund_failed"]
    assert len(_posts(razorpay, refunded.payment_id)) == 1
    await _clean(pool)


async def test_admin_routes_refuse_everyone_else(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, razorpay: HoldingRazorpay
) -> None:
    refunded = await _failed(api, pool, parties, razorpay)
    retry = f"/api/admin/refunds/{refunded.row_id}/retry"
    assert (await api.get("/api/admin/refunds")).status == 401
    assert (await api.post(retry)).status == 401
    for user in (parties.stranger, parties.client, parties.doer):
        assert (await api.get("/api/admin/refunds", headers=user.headers)).status == 403
        assert (await api.post(retry, headers=user.headers)).status == 403
    admin = parties.admin.headers
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        assert (await api.post(f"/api/admin/refunds/{bad}/retry", headers=admin)).status == 404
    for query in ("status=nope", "limit=0", "page=x"):
        assert (await api.get(f"/api/admin/refunds?{query}", headers=admin)).status == 400
    assert len(_posts(razorpay, refunded.payment_id)) == 1
    assert (await _row(pool, refunded.row_id))["status"] == "failed"


def test_refund_retry_settings(tmp_path: Any) -> None:
    base = {"GIGWIRE_DATA_DIR": str(tmp_path)}
    settings = Settings.from_env(base)
    assert (settings.refund_retry_s, settings.refund_max_attempts) == (1800.0, 5)
    changed = Settings.from_env({**base, "REFUND_RETRY_AFTER_S": "60", "REFUND_MAX_ATTEMPTS": "2"})
    assert (changed.refund_retry_s, changed.refund_max_attempts) == (60.0, 2)
    for name, bad in (
        ("REFUND_RETRY_AFTER_S", "0"),
        ("REFUND_MAX_ATTEMPTS", "0"),
        ("REFUND_MAX_ATTEMPTS", "x"),
    ):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({**base, name: bad})
