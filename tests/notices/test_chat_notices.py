"""A chat message whose recipient watches no live session of that chat becomes, besides its push, an
inbox row and a live NOTIFICATION (chat_message), each as the recipient's preference allows; one the
recipient watches live becomes none of them. Over /ws and REST with the workers running."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.notices.conftest import Live, Party, apply, create_gig, eventually


def _chat_pushes(party: Party) -> list[dict[str, Any]]:
    return [m for m in party.fcm.sent_to(party.phone) if m["data"].get("type") == "CHAT_MESSAGE"]


async def _chat_inbox(party: Party) -> list[dict[str, Any]]:
    return [i for i in await party.inbox() if i["type"] == "chat_message"]


async def test_chat_message_to_someone_not_watching_reaches_inbox_live_and_push(
    app_client: TestClient[Any, Any], party: Any, live: Any, pool: asyncpg.Pool
) -> None:
    client: Party = await party("Asha")
    doer: Party = await party("Ravi")
    gig = await create_gig(app_client, client.user)
    application = await apply(app_client, doer.user, gig["id"])
    r = await app_client.post(f"/api/applications/{application['id']}/accept", headers=client.headers)
    order_id = (await r.json())["data"]["order"]["id"]
    client_ws: Live = await live(client)  # online, but not in the order's chat
    doer_ws: Live = await live(doer)
    assert (await doer_ws.send({"type": "SUBSCRIBE_CHAT", "data": {"orderId": order_id}}))["type"] == "ACK"

    async def say(text: str) -> dict[str, Any]:
        ack = await doer_ws.send({"type": "CHAT_MESSAGE", "data": {"orderId": order_id, "text": text}})
        assert ack["type"] == "ACK", ack
        return ack

    await say("First draft is up.")
    await eventually(lambda: _chat_pushes(client))
    (row,) = await eventually(lambda: _chat_inbox(client))
    assert (row["title"], row["body"]) == ("Ravi", "First draft is up.")
    assert row["data"]["event"] == "chat_message" and row["data"]["orderId"] == order_id
    assert row["data"]["senderId"] == doer.id and row["data"]["seq"] == "1"
    frames = await eventually(lambda: [n for n in client_ws.notifications() if n["type"] == "chat_message"])
    assert frames[0]["id"] == row["id"] and frames[0]["body"] == "First draft is up."
    assert _chat_pushes(doer) == [] and await _chat_inbox(doer) == []  # never to the sender

    # Watching the chat live: no push, no inbox row, no NOTIFICATION.
    ack = await client_ws.send({"type": "SUBSCRIBE_CHAT", "data": {"orderId": order_id}})
    assert ack["type"] == "ACK"
    await say("Seen live.")
    await eventually(
        lambda: any(
            f.get("type") == "CHAT_MESSAGE" and f["data"].get("text") == "Seen live."
            for f in client_ws.frames
        )
    )

    async def handled() -> bool:  # the push sender decided while the client was still watching
        pending = await pool.fetchval(
            "SELECT (SELECT count(*) FROM push_jobs WHERE user_id = $1)"
            " + (SELECT count(*) FROM chat_push_pending WHERE user_id = $1)",
            client.id,
        )
        return bool(pending == 0)

    await eventually(handled)

    # Offline, with the inbox off for chat: the push only.
    await client.prefer(chat_message={"inbox": False})
    await client_ws.ws.close()
    await say("Are you there?")
    await eventually(lambda: len(_chat_pushes(client)) >= 2)
    await eventually(handled)
    bodies = [p["notification"]["body"] for p in _chat_pushes(client)]
    assert bodies == ["First draft is up.", "Are you there?"]  # nothing for the message seen live
    assert [i["body"] for i in await _chat_inbox(client)] == ["First draft is up."]
    assert len([n for n in client_ws.notifications() if n["type"] == "chat_message"]) == 1


async def test_a_question_before_any_order_reaches_the_gig_owner_as_a_push_and_inbox_row(
    app_client: TestClient[Any, Any], party: Any, live: Any, pool: asyncpg.Pool
) -> None:
    """Pre-order chat (the application's id names the thread) is pushed like order chat: to the
    other party of the application, when they do not watch the thread live; never to the sender."""
    client: Party = await party("Asha")
    doer: Party = await party("Ravi")
    gig = await create_gig(app_client, client.user)
    application = await apply(app_client, doer.user, gig["id"])
    doer_ws: Live = await live(doer)
    ack = await doer_ws.send(
        {"type": "CHAT_MESSAGE", "data": {"orderId": application["id"], "text": "Is the deadline firm?"}}
    )
    assert ack["type"] == "ACK", ack
    (push,) = await eventually(lambda: _chat_pushes(client))
    assert push["notification"] == {"title": "Ravi", "body": "Is the deadline firm?"}
    assert push["data"]["orderId"] == application["id"] and push["data"]["seq"] == "1"
    (row,) = await eventually(lambda: _chat_inbox(client))
    assert row["data"]["orderId"] == application["id"]
    assert _chat_pushes(doer) == []
    # The owner answers: the applicant, not watching the thread, gets it.
    client_ws: Live = await live(client)
    ack = await client_ws.send(
        {"type": "CHAT_MESSAGE", "data": {"orderId": application["id"], "text": "Yes, Friday."}}
    )
    assert ack["type"] == "ACK", ack
    (answer,) = await eventually(lambda: _chat_pushes(doer))
    assert answer["notification"] == {"title": "Asha", "body": "Yes, Friday."}
    assert len(_chat_pushes(client)) == 1
