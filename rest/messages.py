"""/api/orders/{id}/messages and unread counts: the order chat's history and read state over REST
(the live chat is /ws). Only the order's client and doer see it; anyone else gets 404, as if the
order did not exist."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub import chat
from hub.keys import POOL
from rest.errors import ApiError
from rest.http import ok, path_uuid, query_int, require_user
from rest.openapi import BEARER, envelope, errors, json_response, path_id

routes = web.RouteTableDef()

MAX_LIMIT = 100


async def _participant(request: web.Request) -> tuple[str, str]:
    """(order id, caller id) when the caller takes part in the order, else not_found."""
    claims = require_user(request)
    order_id = path_uuid(request)
    people = await chat.participants(request.app[POOL], order_id)
    if people is None or claims.user_id not in people:
        raise ApiError("not_found", f"No order {order_id} of yours.")
    return order_id, claims.user_id


@routes.get("/api/orders/{id}/messages")
async def list_messages(request: web.Request) -> web.Response:
    """A page of the order's chat, oldest first: the newest `limit` messages, or those before
    `beforeSeq`. `nextBeforeSeq` pages further back (null at the start of the chat)."""
    order_id, _ = await _participant(request)
    limit = query_int(request, "limit", 50, 1, MAX_LIMIT)
    before = query_int(request, "beforeSeq", 0, 1, 2**53) if request.query.get("beforeSeq") else None
    items = await chat.history(request.app[POOL], order_id, before, limit)
    oldest = items[0]["seq"] if items else None
    next_before = oldest if oldest is not None and oldest > 1 and len(items) == limit else None
    return ok(items, limit=limit, nextBeforeSeq=next_before)


@routes.get("/api/orders/{id}/unread")
async def order_unread(request: web.Request) -> web.Response:
    """The caller's unread count in one order's chat."""
    order_id, user_id = await _participant(request)
    counts = await chat.unread_counts(request.app[POOL], user_id, order_id)
    return ok(counts[0])


@routes.get("/api/chats/unread")
async def all_unread(request: web.Request) -> web.Response:
    """The caller's unread counts in every order chat they take part in, newest order first."""
    claims = require_user(request)
    counts = await chat.unread_counts(request.app[POOL], claims.user_id)
    return ok(counts, total=sum(c["unread"] for c in counts))


_UUID = {"type": "string", "format": "uuid"}
_MS = {"type": "integer", "description": "epoch milliseconds"}
ATTACHMENT: dict[str, Any] = {
    "type": "object",
    "required": ["url"],
    "properties": {
        "url": {"type": "string"},
        "name": {"type": "string"},
        "mime": {"type": "string"},
        "size": {"type": "integer", "minimum": 0},
    },
}
MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["id", "orderId", "seq", "senderId", "text", "attachments", "clientMsgId", "createdAt"],
    "properties": {
        "id": _UUID,
        "orderId": _UUID,
        "seq": {"type": "integer", "minimum": 1},
        "senderId": _UUID,
        "text": {"type": "string", "maxLength": 4000},
        "attachments": {"type": "array", "items": ATTACHMENT, "maxItems": 10},
        "clientMsgId": {"type": ["string", "null"]},
        "createdAt": _MS,
    },
}
UNREAD: dict[str, Any] = {
    "type": "object",
    "required": ["orderId", "unread", "lastSeq", "lastReadSeq"],
    "properties": {
        "orderId": _UUID,
        "unread": {
            "type": "integer",
            "minimum": 0,
            "description": "messages from the other party after the mark",
        },
        "lastSeq": {"type": "integer", "minimum": 0},
        "lastReadSeq": {"type": "integer", "minimum": 0},
    },
}
_COUNT = {"type": "integer", "minimum": 0}

OPENAPI: dict[str, dict[str, dict[str, Any]]] = {
    "/api/orders/{id}/messages": {
        "get": {
            "summary": "The order's chat history, oldest first (participants only)",
            "tags": ["chat"],
            "security": BEARER,
            "parameters": [
                path_id("id", "the order id"),
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                },
                {
                    "name": "beforeSeq",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 2**53},
                    "description": "only messages with a smaller seq (page back from nextBeforeSeq)",
                },
            ],
            "responses": {
                "200": json_response(
                    envelope(
                        {"type": "array", "items": MESSAGE},
                        {
                            "limit": {"type": "integer", "minimum": 1},
                            "nextBeforeSeq": {"type": ["integer", "null"], "minimum": 2},
                        },
                    )
                ),
                **errors(400, 401, 404),
            },
        }
    },
    "/api/orders/{id}/unread": {
        "get": {
            "summary": "The caller's unread count in the order's chat",
            "tags": ["chat"],
            "security": BEARER,
            "parameters": [path_id("id", "the order id")],
            "responses": {"200": json_response(envelope(UNREAD)), **errors(401, 404)},
        }
    },
    "/api/chats/unread": {
        "get": {
            "summary": "The caller's unread counts in every order chat",
            "tags": ["chat"],
            "security": BEARER,
            "responses": {
                "200": json_response(envelope({"type": "array", "items": UNREAD}, {"total": _COUNT})),
                **errors(401),
            },
        }
    },
}
