"""A gig follows its order: completed when the order is approved (by the client or the auto-approve
timer); back to open when the order is cancelled before the gig's deadline (the owner hires again),
cancelled after it (PATCH a new deadline, then reopen). PATCH, reopen and DELETE follow the status.
Every step over REST with the workers running; the cancellations' notifications are checked too."""

from __future__ import annotations

from collections import Counter
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.market.conftest import future_ms
from tests.notices.conftest import Party, apply, create_gig, eventually, idem


async def _order(api: TestClient[Any, Any], client: Party, doer: Party, *, pay: bool) -> tuple[str, str]:
    """A gig of `client`, `doer`'s application accepted, the order paid when `pay`: (gig, order)."""
    gig = await create_gig(api, client.user)
    application = await apply(api, doer.user, gig["id"])
    r = await api.post(f"/api/applications/{application['id']}/accept", headers=client.headers)
    assert r.status == 200, await r.text()
    order_id = (await r.json())["data"]["order"]["id"]
    if pay:
        r = await api.post("/api/payments/create-order", json={"orderId": order_id}, headers=idem(client))
        checkout = {"gatewayOrderId": (await r.json())["data"]["gatewayOrderId"]}
        r = await api.post("/api/dev/sandbox/checkout", json=checkout, headers=client.headers)
        r = await api.post("/api/payments/verify", json=(await r.json())["data"], headers=idem(client))
        assert r.status == 200, await r.text()
    return gig["id"], order_id


async def _act(api: TestClient[Any, Any], who: Party, order_id: str, action: str, body: Any = None) -> None:
    r = await api.post(f"/api/orders/{order_id}/{action}", json=body or {}, headers=idem(who))
    assert r.status == 200, await r.text()


async def _status(api: TestClient[Any, Any], gig_id: str) -> str:
    r = await api.get(f"/api/gigs/{gig_id}")
    return str((await r.json())["data"]["status"])


async def _owner_can(api: TestClient[Any, Any], owner: Party, gig_id: str) -> dict[str, int]:
    """The status answered to PATCH, reopen and DELETE (tried in that order; DELETE last)."""
    patch = await api.patch(f"/api/gigs/{gig_id}", json={"budgetMax": 160_000}, headers=owner.headers)
    reopen = await api.post(f"/api/gigs/{gig_id}/reopen", headers=owner.headers)
    delete = await api.delete(f"/api/gigs/{gig_id}", headers=owner.headers)
    return {"patch": patch.status, "reopen": reopen.status, "delete": delete.status}


def _events(items: list[dict[str, Any]], order_id: str) -> Counter[str]:
    return Counter(i["data"]["event"] for i in items if i["data"].get("orderId") == order_id)


async def test_approved_order_completes_its_gig_which_is_then_final(
    app_client: TestClient[Any, Any], party: Any
) -> None:
    client, doer = await party("Client"), await party("Doer")
    gig_id, order_id = await _order(app_client, client, doer, pay=True)
    assert await _status(app_client, gig_id) == "in_progress"
    await _act(app_client, doer, order_id, "submit", {"deliverables": [{"url": "https://f.example/a"}]})
    await _act(app_client, client, order_id, "approve")
    assert await _status(app_client, gig_id) == "completed"
    assert await _owner_can(app_client, client, gig_id) == {"patch": 409, "reopen": 409, "delete": 409}
    assert await _status(app_client, gig_id) == "completed"


async def test_cancelled_before_the_deadline_the_gig_reopens_and_hires_again(
    app_client: TestClient[Any, Any], party: Any
) -> None:
    client, doer, second = await party("Client"), await party("Doer"), await party("Second")
    gig_id, order_id = await _order(app_client, client, doer, pay=False)
    await _act(app_client, client, order_id, "cancel", {"reason": "Found a friend to do it."})
    assert await _status(app_client, gig_id) == "open"
    # The doer hears of it; the client cancelled it themselves.
    assert _events(await doer.inbox(), order_id) == Counter(order_opened=1, order_cancelled=1)
    assert _events(await client.inbox(), order_id) == Counter(order_opened=1)
    r = await app_client.patch(f"/api/gigs/{gig_id}", json={"budgetMax": 160_000}, headers=client.headers)
    assert r.status == 200 and (await r.json())["data"]["budgetMax"] == 160_000
    r = await app_client.post(f"/api/gigs/{gig_id}/reopen", headers=client.headers)
    assert r.status == 409  # it is open already
    application = await apply(app_client, second.user, gig_id)
    r = await app_client.post(f"/api/applications/{application['id']}/accept", headers=client.headers)
    assert r.status == 200, await r.text()
    assert await _status(app_client, gig_id) == "in_progress"
    # Its first order's history keeps the gig: never deleted once an order points at it.
    r = await app_client.delete(f"/api/gigs/{gig_id}", headers=client.headers)
    assert r.status == 409


async def test_cancelled_after_the_deadline_the_gig_is_cancelled_until_given_a_new_one(
    app_client: TestClient[Any, Any], party: Any, pool: asyncpg.Pool
) -> None:
    client, doer = await party("Client"), await party("Doer")
    gig_id, order_id = await _order(app_client, client, doer, pay=True)
    await pool.execute("UPDATE gigs SET deadline = now() - interval '1 hour' WHERE id = $1", gig_id)
    await _act(app_client, doer, order_id, "cancel", {"reason": "Exams."})
    assert await _status(app_client, gig_id) == "cancelled"
    # The client hears of the cancellation and of the refund (the sandbox refunds at once).
    assert _events(await client.inbox(), order_id) == Counter(
        order_opened=1, payment_received=1, order_cancelled=1, refund_processed=1
    )
    refund = next(i for i in await client.inbox() if i["data"]["event"] == "refund_processed")
    assert refund["type"] == "payment" and "₹900.00" in refund["body"]
    assert _events(await doer.inbox(), order_id) == Counter(order_opened=1, payment_received=1)
    r = await app_client.post(f"/api/gigs/{gig_id}/reopen", headers=client.headers)
    assert r.status == 409 and "deadline" in (await r.json())["error"]["message"]
    r = await app_client.patch(f"/api/gigs/{gig_id}", json={"deadline": future_ms(5)}, headers=client.headers)
    assert r.status == 200, await r.text()
    r = await app_client.post(f"/api/gigs/{gig_id}/reopen", headers=client.headers)
    assert r.status == 200 and (await r.json())["data"]["status"] == "open"
    assert (await app_client.delete(f"/api/gigs/{gig_id}", headers=client.headers)).status == 409


async def test_timers_expire_and_auto_approve_and_tell_both_parties(
    app_client: TestClient[Any, Any], party: Any, pool: asyncpg.Pool
) -> None:
    client, doer = await party("Client"), await party("Doer")
    unpaid_gig, unpaid = await _order(app_client, client, doer, pay=False)
    done_gig, done = await _order(app_client, client, doer, pay=True)
    await _act(app_client, doer, done, "submit", {"deliverables": [{"url": "https://f.example/a"}]})
    # Due now: unpaid for a day and more, submitted eight days ago (the defaults are 24 h and 7 days).
    await pool.execute("UPDATE orders SET created_at = now() - interval '25 hours' WHERE id = $1", unpaid)
    await pool.execute("UPDATE orders SET submitted_at = now() - interval '8 days' WHERE id = $1", done)

    async def moved() -> bool:
        return (await _status(app_client, unpaid_gig), await _status(app_client, done_gig)) == (
            "open",
            "completed",
        )

    await eventually(moved, within=20)
    for who in (client, doer):
        inbox = await who.inbox()
        (expired,) = [i for i in inbox if i["data"]["event"] == "order_cancelled"]
        assert expired["data"]["orderId"] == unpaid and expired["data"]["automatic"] is True
        assert "not paid in time" in expired["body"]
        (approved,) = [i for i in inbox if i["data"]["event"] == "order_approved"]
        assert approved["data"]["orderId"] == done and approved["data"]["automatic"] is True
        assert approved["title"] == "Order auto-approved" and approved["type"] == "payment"
    (doer_approved,) = [i for i in await doer.inbox() if i["data"]["event"] == "order_approved"]
    assert "₹810.00 is in your wallet" in doer_approved["body"]
