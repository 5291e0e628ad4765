"""Review notifications through the real machinery, with the workers running: a whole order over REST
(sandbox checkout) approved, then reviewed, replied to and edited; each notification reaches the
inbox, the recipient's live /ws session as a NOTIFICATION frame and their phone through the fake FCM."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.notices.conftest import Party, apply, create_gig, eventually, idem


async def _completed(api: TestClient[Any, Any], client: Party, doer: Party) -> str:
    gig = await create_gig(api, client.user, title="Slides for a seminar")
    application = await apply(api, doer.user, gig["id"], bid=60_000)
    r = await api.post(f"/api/applications/{application['id']}/accept", headers=client.headers)
    order_id: str = (await r.json())["data"]["order"]["id"]
    r = await api.post("/api/payments/create-order", json={"orderId": order_id}, headers=idem(client))
    gateway_order = (await r.json())["data"]["gatewayOrderId"]
    r = await api.post(
        "/api/dev/sandbox/checkout", json={"gatewayOrderId": gateway_order}, headers=client.headers
    )
    r = await api.post("/api/payments/verify", json=(await r.json())["data"], headers=idem(client))
    assert r.status == 200, await r.text()
    for who, action, body in (
        (doer, "submit", {"deliverables": [{"url": "https://files.example/slides.pdf"}]}),
        (client, "approve", {}),
    ):
        r = await api.post(f"/api/orders/{order_id}/{action}", json=body, headers=idem(who))
        assert r.status == 200, await r.text()
    return order_id


async def test_review_reply_and_edit_notify_live_inbox_and_push(
    app_client: TestClient[Any, Any], party: Any, live: Any
) -> None:
    client: Party = await party("Client")
    doer: Party = await party("Doer")
    order_id = await _completed(app_client, client, doer)
    doer_live = await live(doer)
    client_live = await live(client)

    r = await app_client.post(
        f"/api/orders/{order_id}/review", json={"stars": 5, "text": "Lovely slides"}, headers=client.headers
    )
    assert r.status == 201, await r.text()
    review_id = (await r.json())["data"]["id"]

    def received(session: Any, event: str) -> Any:
        return next((n for n in session.notifications() if n["data"]["event"] == event), None)

    frame = await eventually(lambda: received(doer_live, "review_received"))
    assert frame["type"] == "review"
    assert (frame["data"]["reviewId"], frame["data"]["orderId"]) == (review_id, order_id)
    assert frame["body"] == "You got 5 stars for “Slides for a seminar”."
    inbox = await doer.inbox()
    assert any(n["data"]["event"] == "review_received" and n["data"]["reviewId"] == review_id for n in inbox)
    await eventually(lambda: any(p["data"]["event"] == "review_received" for p in doer.pushes()))

    r = await app_client.post(
        f"/api/reviews/{review_id}/reply", json={"text": "Thank you!"}, headers=doer.headers
    )
    assert r.status == 200, await r.text()
    frame = await eventually(lambda: received(client_live, "review_replied"))
    assert frame["data"]["reviewId"] == review_id

    r = await app_client.patch(f"/api/reviews/{review_id}", json={"stars": 4}, headers=client.headers)
    assert r.status == 200, await r.text()
    frame = await eventually(lambda: received(doer_live, "review_edited"))
    assert "4 stars" in frame["body"]
    # Nobody hears of their own action.
    assert received(client_live, "review_received") is None
    assert received(doer_live, "review_replied") is None
