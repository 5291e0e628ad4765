"""Attachments must be uploaded media of the sender (of the right kind) or https URLs: chat over /ws
and Socket.IO end to end (a refused attachment is ERROR bad_request and the connection stays), and
gigs over REST. The order's other party may then read a chat attachment; a stranger may not."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from hub.settings import Settings
from tests.factories import make_order, make_user
from tests.hub.conftest import Node, Pair, make_node, node, pair
from tests.market.conftest import gig_body
from tests.media.conftest import PDF_BYTES, uploaded
from tests.sio.conftest import sio_connect

__all__ = ["make_node", "node", "pair"]

UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def _count(pool: asyncpg.Pool, order_id: str) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM messages WHERE order_id = $1", order_id)
    return n


async def test_a_chat_attachment_over_ws_reaches_the_other_party_who_may_read_it(
    node: Node, pair: Pair, pool: asyncpg.Pool, settings: Settings
) -> None:
    client = node.client
    media = await uploaded(client, pair.client, "chat_attachment", PDF_BYTES)
    stranger = await make_user(pool, settings)
    # Before it is sent, only its owner can see it.
    assert (await client.get(f"/api/media/{media['id']}", headers=pair.doer.headers)).status == 404
    a = await node.connect(pair.client, subscribe=pair.order_id)
    b = await node.connect(pair.doer, subscribe=pair.order_id)
    sent = {"mediaId": media["id"], "name": "brief.pdf", "mime": "text/plain", "size": 1}
    ack = await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "attachments": [sent]})
    got = await b.expect("CHAT_MESSAGE")
    # Type and size are the server's, not what the sender claimed.
    expected = {
        "mediaId": media["id"],
        "name": "brief.pdf",
        "mime": "application/pdf",
        "size": len(PDF_BYTES),
    }
    assert got["data"]["attachments"] == [expected] and got["data"]["id"] == ack["id"]
    # The REST history carries the same attachment.
    resp = await client.get(f"/api/orders/{pair.order_id}/messages", headers=pair.doer.headers)
    assert (await resp.json())["data"][0]["attachments"] == [expected]
    # The other party now gets a link to it; a stranger still does not.
    resp = await client.get(f"/api/media/{media['id']}", headers=pair.doer.headers)
    assert resp.status == 200
    link = (await resp.json())["data"]["url"]
    resp = await client.get(link.split(str(client.port), 1)[1])
    assert resp.status == 200 and await resp.read() == PDF_BYTES
    assert (await client.get(f"/api/media/{media['id']}", headers=stranger.headers)).status == 404


async def test_foreign_unknown_or_wrong_kind_media_is_bad_request_over_ws_and_the_connection_stays(
    node: Node, pair: Pair, pool: asyncpg.Pool, settings: Settings
) -> None:
    client = node.client
    mine_avatar = await uploaded(client, pair.client, "avatar")
    theirs = await uploaded(client, pair.doer, "chat_attachment")
    used_elsewhere = await uploaded(client, pair.client, "chat_attachment")
    other_doer = await make_user(pool, settings)
    other_order = await make_order(pool, pair.client, other_doer)
    a = await node.connect(pair.client, subscribe=pair.order_id)
    await a.ack("CHAT_MESSAGE", {"orderId": other_order, "attachments": [{"mediaId": used_elsewhere["id"]}]})
    for attachment, words in [
        ({"mediaId": UNKNOWN}, "not a chat_attachment of yours"),
        ({"mediaId": theirs["id"]}, "not a chat_attachment of yours"),  # the other party's
        ({"mediaId": mine_avatar["id"]}, "not a chat_attachment of yours"),  # wrong kind
        ({"mediaId": used_elsewhere["id"]}, "another order"),
        ({"mediaId": "not-a-uuid"}, "UUID"),
        ({"url": "http://files.example/a.pdf"}, "https"),
        ({"url": "javascript:alert(1)"}, "https"),
        ({"url": "https://files.example/a.pdf", "mediaId": theirs["id"]}, "one of url"),
        ({"name": "nothing.pdf"}, "one of url"),
    ]:
        frame = await a.request(
            "CHAT_MESSAGE", {"orderId": pair.order_id, "text": "x", "attachments": [attachment]}
        )
        assert frame["type"] == "ERROR" and frame["data"]["code"] == "bad_request", (attachment, frame)
        assert words in frame["data"]["message"], (attachment, frame)
    assert await _count(pool, pair.order_id) == 0
    # Still connected and still able to send an https link.
    ack = await a.ack(
        "CHAT_MESSAGE", {"orderId": pair.order_id, "attachments": [{"url": "https://files.example/a.pdf"}]}
    )
    assert ack["seq"] == 1


async def test_chat_attachments_over_socketio(node: Node, pair: Pair, pool: asyncpg.Pool) -> None:
    media = await uploaded(node.client, pair.doer, "chat_attachment")
    theirs = await uploaded(node.client, pair.client, "chat_attachment")
    a = await sio_connect(node, pair.doer, subscribe=pair.order_id)
    b = await sio_connect(node, pair.client, subscribe=pair.order_id)
    refused = await a.call(
        "CHAT_MESSAGE", {"orderId": pair.order_id, "attachments": [{"mediaId": theirs["id"]}]}
    )
    assert refused["error"]["code"] == "bad_request", refused
    assert a.client.connected
    ack = await a.call("CHAT_MESSAGE", {"orderId": pair.order_id, "attachments": [{"mediaId": media["id"]}]})
    assert "error" not in ack and ack["seq"] == 1, ack
    got = await b.expect("CHAT_MESSAGE")
    assert got["attachments"] == [{"mediaId": media["id"], "mime": "image/png", "size": media["size"]}]
    await a.close()
    await b.close()


async def test_gig_attachments_are_own_gig_media_or_https(
    client: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    owner = await make_user(pool, settings)
    other = await make_user(pool, settings)
    mine = await uploaded(client, owner, "gig_attachment", PDF_BYTES)
    theirs = await uploaded(client, other, "gig_attachment")
    chat = await uploaded(client, owner, "chat_attachment")
    for attachment in [
        {"mediaId": theirs["id"]},
        {"mediaId": chat["id"]},
        {"mediaId": UNKNOWN},
        {"mediaId": "zzz"},
        {"url": "http://files.example/brief.pdf"},
        {"url": "https://files.example/x", "mediaId": mine["id"]},
        {"name": "x"},
    ]:
        resp = await client.post("/api/gigs", json=gig_body(attachments=[attachment]), headers=owner.headers)
        body = await resp.json()
        assert resp.status == 400, (attachment, body)
        assert "attachments" in body["error"]["details"]["fields"], body
    resp = await client.post(
        "/api/gigs",
        json=gig_body(
            attachments=[
                {"mediaId": mine["id"], "name": "brief.pdf", "size": 1},
                {"url": "https://x.example/a"},
            ]
        ),
        headers=owner.headers,
    )
    body = await resp.json()
    assert resp.status == 201, body
    gig = body["data"]
    assert gig["attachments"] == [
        {"mediaId": mine["id"], "name": "brief.pdf", "mime": "application/pdf", "size": len(PDF_BYTES)},
        {"url": "https://x.example/a"},
    ]
    # PATCH follows the same rule.
    resp = await client.patch(
        f"/api/gigs/{gig['id']}", json={"attachments": [{"mediaId": theirs["id"]}]}, headers=owner.headers
    )
    assert resp.status == 400
    resp = await client.patch(
        f"/api/gigs/{gig['id']}", json={"attachments": [{"mediaId": mine["id"]}]}, headers=owner.headers
    )
    assert resp.status == 200 and (await resp.json())["data"]["attachments"][0]["mime"] == "application/pdf"
    # A gig's media is public: anyone reads it, with no token.
    assert (await client.get(f"/api/media/{mine['id']}")).status == 200


@pytest.mark.parametrize("url", ["https://[::1]/ok", "https://files.example/a?b=c#d"])
async def test_good_https_urls_are_kept(node: Node, pair: Pair, url: str) -> None:
    a = await node.connect(pair.client, subscribe=pair.order_id)
    ack = await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "attachments": [{"url": url}]})
    assert ack["seq"] == 1


async def test_one_media_sent_in_two_orders_at_once_lands_in_one(
    node: Node, pair: Pair, pool: asyncpg.Pool, settings: Settings
) -> None:
    """The binding to an order is one conditional UPDATE: of two concurrent sends of the same media
    into two orders, exactly one is stored; the other is refused and stores nothing."""
    other_doer = await make_user(pool, settings)
    second_order = await make_order(pool, pair.client, other_doer)
    for _ in range(5):
        media = await uploaded(node.client, pair.client, "chat_attachment")
        a = await node.connect(pair.client)
        b = await node.connect(pair.client)
        frames = await asyncio.gather(
            a.request("CHAT_MESSAGE", {"orderId": pair.order_id, "attachments": [{"mediaId": media["id"]}]}),
            b.request("CHAT_MESSAGE", {"orderId": second_order, "attachments": [{"mediaId": media["id"]}]}),
        )
        assert sorted(f["type"] for f in frames) == ["ACK", "ERROR"], frames
        bound = await pool.fetchval("SELECT order_id::text FROM media WHERE id = $1", media["id"])
        winner = pair.order_id if frames[0]["type"] == "ACK" else second_order
        assert bound == winner
        carrying = await pool.fetchval(
            "SELECT count(*) FROM messages WHERE attachments @> $1::jsonb",
            [{"mediaId": media["id"]}],
        )
        assert carrying == 1
        await a.ws.close()
        await b.ws.close()
