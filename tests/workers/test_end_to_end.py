"""End to end through the whole web process with its embedded workers: an order approved over REST
reaches the doer's live WebSocket as ORDER_UPDATE and the doer's phone as the approval's push
notification through FCM."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from domain.orders import transition
from tests.factories import open_test_order
from tests.workers.conftest import add_device
from tests.workers.fake_fcm import FakeFcm
from workers import WORKERS


async def _order_update(ws: aiohttp.ClientWebSocketResponse, status: str) -> dict[str, Any]:
    """The next ORDER_UPDATE frame with `status` (earlier changes of the order may arrive first)."""
    seen: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(20):
            while True:
                frame = await ws.receive_json()
                seen.append(frame)
                if frame.get("type") == "ORDER_UPDATE" and frame["data"]["status"] == status:
                    return dict(frame)
    except TimeoutError:
        raise AssertionError(f"no ORDER_UPDATE {status} within 20 s; frames seen: {seen}") from None


async def test_rest_approve_reaches_live_socket_and_offline_phone(
    aiohttp_client: Any, make_app: Any, pool: asyncpg.Pool, fcm: FakeFcm, tmp_path: Path, user_factory: Any
) -> None:
    app = make_app(
        run_workers=True, fcm_credentials_file=fcm.credentials_file(tmp_path), fcm_endpoint=fcm.url
    )
    client = await aiohttp_client(app)
    buyer, doer = await user_factory(name="Client"), await user_factory(name="Doer")
    order_id = await open_test_order(pool, buyer, doer)
    async with pool.acquire() as conn, conn.transaction():
        await transition(conn, order_id, "fund", None, payment_id=f"pay_e2e_{order_id[:8]}")
        await transition(
            conn, order_id, "submit", doer.id, deliverables=[{"url": "https://example.com/w.zip"}]
        )
    phone = await add_device(pool, doer, "android")
    buyer_phone = await add_device(pool, buyer, "android")
    ipad = {"token": "doer-ipad-1", "platform": "ios"}
    resp = await client.post("/api/devices", json=ipad, headers=doer.headers)
    assert resp.status in (200, 201)

    ws = await client.ws_connect(f"/ws?token={doer.token}")
    try:
        assert (await ws.receive_json())["type"] == "AUTHENTICATED"
        resp = await client.post(
            f"/api/orders/{order_id}/approve", json={}, headers={**buyer.headers, "Idempotency-Key": "e2e-1"}
        )
        assert resp.status == 200, await resp.text()
        frame = await _order_update(ws, "completed")
    finally:
        await ws.close()
    assert frame["data"]["orderId"] == order_id
    assert frame["data"]["status"] == "completed" and frame["data"]["previousStatus"] == "submitted"
    assert frame["data"]["actorId"] == buyer.id

    def completed(token: str) -> list[dict[str, Any]]:
        # The approval's notification (domain/notices.py) is what pushes, not the ORDER_UPDATE.
        return [m for m in fcm.sent_to(token) if m["data"].get("event") == "order_approved"]

    try:
        async with asyncio.timeout(20):
            while not completed(phone) or not completed("doer-ipad-1"):  # noqa: ASYNC110 - another task's state
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"pushes missing after 20 s; FCM got {fcm.attempts}") from None
    pushes = completed(phone)
    assert len(pushes) == 1, pushes
    push = pushes[0]
    assert push["notification"]["title"] == "Payment released"
    assert "Logo design" in push["notification"]["body"]
    assert push["data"]["orderId"] == order_id and push["data"]["type"] == "NOTIFICATION"
    assert push["data"]["notificationType"] == "payment"
    assert completed("doer-ipad-1")[0]["apns"]["headers"]["apns-priority"] == "10"
    # The client approved it: no push to the client about their own action.
    assert completed(buyer_phone) == []
    metrics = app[WORKERS].metrics.registry
    # The fake FCM records a push when it receives it; the worker counts it once the answer is
    # back, a moment later.
    async with asyncio.timeout(5):
        while (metrics.get_sample_value("gigwire_push_sent_total") or 0) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    # The embedded workers count on the web process's own /metrics.
    text = await (await client.get("/metrics")).text()
    assert "gigwire_push_sent_total" in text and "gigwire_outbox_published_total" in text


async def _ack(ws: aiohttp.ClientWebSocketResponse, ref: str) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            frame = await ws.receive_json()
            if frame.get("ref") == ref:
                assert frame["type"] == "ACK", frame
                return dict(frame)


async def test_chat_push_only_to_the_participant_not_watching_live(
    aiohttp_client: Any, make_app: Any, pool: asyncpg.Pool, fcm: FakeFcm, tmp_path: Path, user_factory: Any
) -> None:
    credentials = fcm.credentials_file(tmp_path)
    app = make_app(run_workers=True, fcm_credentials_file=credentials, fcm_endpoint=fcm.url)
    client = await aiohttp_client(app)
    buyer, doer = await user_factory(name="Client"), await user_factory(name="Doer")
    order_id = await open_test_order(pool, buyer, doer)
    buyer_phone, doer_phone = await add_device(pool, buyer), await add_device(pool, doer)
    doer_ws = await client.ws_connect(f"/ws?token={doer.token}")
    buyer_ws = await client.ws_connect(f"/ws?token={buyer.token}")  # online, but not in the chat
    try:
        await doer_ws.send_json({"type": "SUBSCRIBE_CHAT", "data": {"orderId": order_id}, "ref": "s1"})
        await _ack(doer_ws, "s1")
        await buyer_ws.send_json(
            {"type": "CHAT_MESSAGE", "data": {"orderId": order_id, "text": "seen live"}, "ref": "m1"}
        )
        await _ack(buyer_ws, "m1")
        await doer_ws.send_json(
            {"type": "CHAT_MESSAGE", "data": {"orderId": order_id, "text": "are you there?"}, "ref": "m2"}
        )
        await _ack(doer_ws, "m2")
        registry = app[WORKERS].metrics.registry

        def chats(token: str) -> list[dict[str, Any]]:
            return [m for m in fcm.sent_to(token) if m["data"]["type"] == "CHAT_MESSAGE"]

        async with asyncio.timeout(20):
            while not chats(buyer_phone) or not registry.get_sample_value(  # noqa: ASYNC110
                "gigwire_push_skipped_total", {"reason": "seen_live"}
            ):
                await asyncio.sleep(0.05)
    finally:
        await doer_ws.close()
        await buyer_ws.close()
    (push,) = chats(buyer_phone)
    assert push["notification"] == {"title": "Doer", "body": "are you there?"}
    assert push["android"]["collapse_key"] == f"chat-{order_id}"
    assert push["apns"]["headers"]["apns-collapse-id"] == f"chat-{order_id}"
    assert chats(doer_phone) == []  # the doer watched the chat live
