"""/api/orders/{id}/messages and unread counts: the order chat's history and read state over REST
(the live chat is /ws). Only the order's client and doer see it; anyone else gets 404, as if the
order did not exist."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web

from hub import chat
from hub.keys import POOL
from hub.model import EpochMs, Uuid
from rest.api import Routes, Wire, load, load_all, ok
from rest.errors import ApiError
from rest.http import path_uuid, query_int, require_user

routes = Routes("chat")

MAX_LIMIT = 100
Seq = Annotated[int, msgspec.Meta(ge=0)]


class ChatAttachment(Wire, omit_defaults=True):
    """A file a message links to, as the realtime CHAT_MESSAGE stored it: an https `url`, or the
    `mediaId` of an uploaded media (GET /api/media/{id} gives either party a link to it; mime and
    size are then the server's). name, mime and size only when known."""

    url: str | None = None
    media_id: Uuid | None = None
    name: str | None = None
    mime: str | None = None
    size: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Message(Wire):
    """A stored chat message, as CHAT_MESSAGE frames carry it."""

    id: Uuid
    order_id: Uuid
    seq: Annotated[int, msgspec.Meta(ge=1)]
    sender_id: Uuid
    text: Annotated[str, msgspec.Meta(max_length=4000)]
    attachments: Annotated[list[ChatAttachment], msgspec.Meta(max_length=10)]
    client_msg_id: str | None
    created_at: EpochMs


class ChatUnread(Wire):
    """The caller's read state in one order's chat."""

    order_id: Uuid
    unread: Annotated[int, msgspec.Meta(ge=0, description="messages from the other party after the mark")]
    last_seq: Seq
    last_read_seq: Seq


_ORDER_ID: dict[str, Any] = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
    "description": "the order id",
}


async def _participant(request: web.Request) -> tuple[str, str]:
    """(order id, caller id) when the caller takes part in the order, else not_found."""
    claims = require_user(request)
    order_id = path_uuid(request)
    people = await chat.participants(request.app[POOL], order_id)
    if people is None or claims.user_id not in people:
        raise ApiError("not_found", f"No order {order_id} of yours.")
    return order_id, claims.user_id


@routes.get(
    "/api/orders/{id}/messages",
    summary="The order's chat history, oldest first (participants only)",
    auth=True,
    response=list[Message],
    meta={
        "limit": Annotated[int, msgspec.Meta(ge=1)],
        "nextBeforeSeq": Annotated[int, msgspec.Meta(ge=2)] | None,
    },
    parameters=(
        _ORDER_ID,
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            "description": "default 50",
        },
        {
            "name": "beforeSeq",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**53},
            "description": "only messages with a smaller seq (page back from nextBeforeSeq)",
        },
    ),
    errors=(400, 404),
)
async def list_messages(request: web.Request) -> web.Response:
    """A page of the order's chat, oldest first: the newest `limit` messages, or those before
    `beforeSeq`. `nextBeforeSeq` pages further back (null at the start of the chat)."""
    order_id, _ = await _participant(request)
    limit = query_int(request, "limit", 50, 1, MAX_LIMIT)
    before = query_int(request, "beforeSeq", 0, 1, 2**53) if request.query.get("beforeSeq") else None
    items = await chat.history(request.app[POOL], order_id, before, limit)
    oldest = items[0]["seq"] if items else None
    next_before = oldest if oldest is not None and oldest > 1 and len(items) == limit else None
    return ok(load_all(Message, items), limit=limit, nextBeforeSeq=next_before)


@routes.get(
    "/api/orders/{id}/unread",
    summary="The caller's unread count in the order's chat",
    auth=True,
    response=ChatUnread,
    parameters=(_ORDER_ID,),
    errors=(404,),
)
async def order_unread(request: web.Request) -> web.Response:
    """The caller's unread count in one order's chat."""
    order_id, user_id = await _participant(request)
    counts = await chat.unread_counts(request.app[POOL], user_id, order_id)
    return ok(load(ChatUnread, counts[0]))


@routes.get(
    "/api/chats/unread",
    summary="The caller's unread counts in every order chat",
    auth=True,
    response=list[ChatUnread],
    meta={"total": Annotated[int, msgspec.Meta(ge=0)]},
)
async def all_unread(request: web.Request) -> web.Response:
    """The caller's unread counts in every order chat they take part in, newest order first."""
    claims = require_user(request)
    counts = await chat.unread_counts(request.app[POOL], claims.user_id)
    return ok(load_all(ChatUnread, counts), total=sum(c["unread"] for c in counts))
