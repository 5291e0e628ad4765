"""A whole order through REST (apply -> accept -> pay through the sandbox checkout -> submit ->
revision -> submit -> approve -> withdraw) with the workers running: each party's inbox, live
NOTIFICATION frames on their /ws session and pushes at the fake FCM, each channel obeying the
party's preference per type."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiohttp.test_utils import TestClient

from tests.notices.conftest import Live, Party, apply, create_gig, eventually, idem


def _events(items: list[dict[str, Any]]) -> Counter[str]:
    """How many notifications of each `data.event` (inbox items and live frames have the same shape)."""
    return Counter(str(i["data"]["event"]) for i in items)


def _push_events(party: Party) -> Counter[str]:
    return Counter(p["data"]["event"] for p in party.pushes())


async def _order_flow(api: TestClient[Any, Any], client: Party, doer: Party, other: Party) -> dict[str, str]:
    """Drive the whole order over REST; the ids it made."""
    gig = await create_gig(api, client.user, title="Poster for the robotics club")
    mine = await apply(api, doer.user, gig["id"], bid=80_000)
    await apply(api, other.user, gig["id"], bid=70_000)
    r = await api.post(f"/api/applications/{mine['id']}/accept", headers=client.headers)
    assert r.status == 200, await r.text()
    order_id = (await r.json())["data"]["order"]["id"]
    r = await api.post("/api/payments/create-order", json={"orderId": order_id}, headers=idem(client))
    assert r.status == 200, await r.text()
    gateway_order = (await r.json())["data"]["gatewayOrderId"]
    r = await api.post(
        "/api/dev/sandbox/checkout", json={"gatewayOrderId": gateway_order}, headers=client.headers
    )
    assert r.status == 200, await r.text()
    r = await api.post("/api/payments/verify", json=(await r.json())["data"], headers=idem(client))
    assert r.status == 200, await r.text()

    async def act(who: Party, action: str, body: dict[str, Any]) -> None:
        r = await api.post(f"/api/orders/{order_id}/{action}", json=body, headers=idem(who))
        assert r.status == 200, await r.text()

    await act(doer, "submit", {"deliverables": [{"url": "https://files.example/poster-v1.pdf"}]})
    await act(client, "request-revision", {"reason": "Bigger robot, please."})
    await act(doer, "submit", {"deliverables": [{"url": "https://files.example/poster-v2.pdf"}]})
    await act(client, "approve", {})
    bank = {"holderName": "Doer", "ifsc": "HDFC0000001", "accountNumber": "5555666677"}
    r = await api.post("/api/bank-accounts", json=bank, headers=idem(doer))
    assert r.status == 201, await r.text()
    bank_id = (await r.json())["data"]["id"]
    r = await api.post(f"/api/bank-accounts/{bank_id}/verify", headers=idem(doer))
    assert (await r.json())["data"]["status"] == "verified"
    r = await api.post(
        "/api/wallet/withdraw", json={"amount": 50_000, "bankAccountId": bank_id}, headers=idem(doer)
    )
    assert r.status == 201, await r.text()
    withdrawal = (await r.json())["data"]
    assert withdrawal["status"] == "processed"
    return {"gig": gig["id"], "application": mine["id"], "order": order_id, "withdrawal": withdrawal["id"]}


async def test_whole_order_notifies_each_party_on_each_allowed_channel(
    app_client: TestClient[Any, Any], party: Any, live: Any
) -> None:
    client: Party = await party("Asha", roles=("client",))
    doer: Party = await party("Ravi", roles=("doer",))
    other: Party = await party("Meera", roles=("doer",))
    # One channel off per type: the client wants no pushes about orders; the doer keeps payments
    # out of the inbox and order updates out of the live session.
    await client.prefer(order_update={"push": False})
    await doer.prefer(payment={"inbox": False}, order_update={"live": False})
    client_ws: Live = await live(client)
    doer_ws: Live = await live(doer)

    ids = await _order_flow(app_client, client, doer, other)

    # What each party is told (data.event), and on which channel.
    client_all = Counter(
        new_application=2, order_opened=1, payment_received=1, order_submitted=2
    )  # approving, asking for a revision: the client's own acts
    client_push = Counter(new_application=2, payment_received=1)  # order_update pushes are off
    doer_inbox = Counter(application_accepted=1, order_opened=1, revision_requested=1)  # no payments
    doer_live = Counter(application_accepted=1, payment_received=1, order_approved=1, withdrawal_paid=1)
    doer_push = Counter(
        application_accepted=1,
        order_opened=1,
        payment_received=1,
        revision_requested=1,
        order_approved=1,
        withdrawal_paid=1,
    )
    other_all = Counter(application_rejected=1)

    async def arrived() -> bool:
        return (
            _events(client_ws.notifications()) == client_all
            and _events(doer_ws.notifications()) == doer_live
            and _push_events(client) == client_push
            and _push_events(doer) == doer_push
            and _push_events(other) == other_all
        )

    try:
        await eventually(arrived, within=30)
    except TimeoutError:
        raise AssertionError(
            f"client live {_events(client_ws.notifications())} push {_push_events(client)}; doer live"
            f" {_events(doer_ws.notifications())} push {_push_events(doer)}; other {_push_events(other)}"
        ) from None
    await asyncio.sleep(1.0)  # nothing more comes after a moment either
    assert _events(client_ws.notifications()) == client_all
    assert _events(doer_ws.notifications()) == doer_live
    assert (_push_events(client), _push_events(doer), _push_events(other)) == (
        client_push,
        doer_push,
        other_all,
    )
    client_inbox, doer_inbox_items = await client.inbox(), await doer.inbox()
    assert _events(client_inbox) == client_all
    assert _events(doer_inbox_items) == doer_inbox
    assert _events(await other.inbox()) == other_all

    # The three channels carry one notification: the same id, type, title, body and deep links.
    by_id = {n["id"]: n for n in client_inbox}
    for frame in client_ws.notifications():
        stored = by_id[frame["id"]]
        assert {k: frame[k] for k in ("type", "title", "body", "data")} == {
            k: stored[k] for k in ("type", "title", "body", "data")
        }
    for push in client.pushes():
        stored = by_id[push["data"]["notificationId"]]
        assert push["notification"] == {"title": stored["title"], "body": stored["body"]}
        assert push["data"]["notificationType"] == stored["type"]

    # Types and deep links per event.
    def one(items: list[dict[str, Any]], event: str) -> dict[str, Any]:
        (found,) = [i for i in items if i["data"]["event"] == event]
        return found

    new_app = [i for i in client_inbox if i["data"]["event"] == "new_application"]
    assert {i["type"] for i in new_app} == {"new_application"}
    assert {i["data"]["gigId"] for i in new_app} == {ids["gig"]}
    assert ids["application"] in {i["data"]["applicationId"] for i in new_app}
    assert "Poster for the robotics club" in new_app[0]["title"] and "₹" in new_app[0]["body"]
    funded = one(client_inbox, "payment_received")
    assert funded["type"] == "payment" and funded["data"]["orderId"] == ids["order"]
    assert "₹800.00" in funded["body"]
    submitted = [i for i in client_inbox if i["data"]["event"] == "order_submitted"]
    assert {i["type"] for i in submitted} == {"order_update"}
    assert {i["data"]["orderId"] for i in submitted} == {ids["order"]}
    accepted = one(doer_inbox_items, "application_accepted")
    assert accepted["type"] == "application" and accepted["data"]["applicationId"] == ids["application"]
    revision = one(doer_inbox_items, "revision_requested")
    assert revision["type"] == "order_update" and revision["data"]["gigId"] == ids["gig"]
    approved = one(doer_ws.notifications(), "order_approved")
    assert approved["type"] == "payment" and approved["data"]["orderId"] == ids["order"]
    assert "₹720.00" in approved["body"]  # the payout after the 10% fee
    assert "automatic" not in approved["data"]  # the client approved it
    paid = one(doer_ws.notifications(), "withdrawal_paid")
    assert paid["type"] == "payment" and paid["data"]["withdrawalId"] == ids["withdrawal"]
    (rejected,) = await other.inbox()
    assert rejected["type"] == "application" and rejected["data"]["automatic"] is True
    assert rejected["data"]["gigId"] == ids["gig"]
    # The push carries the deep links too, as FCM's string data.
    (paid_push,) = [p for p in doer.pushes() if p["data"]["event"] == "withdrawal_paid"]
    assert paid_push["data"]["withdrawalId"] == ids["withdrawal"]
