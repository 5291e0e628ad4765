"""/api/conversations: the caller's chats in one list, newest activity first, and any chat's history.

A conversation is an order's chat, or an application's pre-order thread that has at least one
message (the applicant and the gig's owner asking before the gig is awarded). Its id is the chat id
the realtime protocol takes as `orderId`: the order's id, or the application's id, which the order
opened from that application takes as its own, so a thread keeps its id, messages and read marks
when it becomes an order's chat (hub/threads.py). Activity is the last message's time, or the
order's or application's creation when there is none. The list is kept live by CONVERSATION_UPDATED
(docs/protocol.md, Conversations). Only the chat's two users see it; anyone else gets 404."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from hub import chat, threads
from hub.events import to_wire
from hub.keys import POOL
from hub.model import EpochMs, Uuid
from rest.api import Routes, Wire, load, load_all, ok
from rest.errors import ApiError
from rest.http import path_uuid, query_int, require_user
from rest.messages import MAX_LIMIT, Message

routes = Routes("conversations")

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
Count = Annotated[int, msgspec.Meta(ge=0)]


class ConversationParty(Wire):
    """The other user of a conversation, as anyone may see them: id, display name and avatar."""

    id: Uuid
    name: str | None
    avatar_url: str | None


class Conversation(Wire):
    """One of the caller's chats: an order's, or an application's pre-order thread."""

    id: Annotated[
        str, msgspec.Meta(description="The chat id: SUBSCRIBE_CHAT and CHAT_MESSAGE take it as orderId.")
    ]
    kind: Annotated[Literal["order", "application"], msgspec.Meta(description="application: no order yet.")]
    order_id: Annotated[Uuid | None, msgspec.Meta(description="The order, once there is one.")]
    application_id: Uuid
    gig_id: Uuid
    gig_title: str
    status: Annotated[str, msgspec.Meta(description="The order's status, or the application's.")]
    other: ConversationParty
    last_message: Message | None
    last_seq: Count
    last_read_seq: Count
    unread: Annotated[
        int, msgspec.Meta(ge=0, description="Messages from the other user after the caller's read mark.")
    ]
    blocked: Annotated[
        bool,
        msgspec.Meta(description="Either user blocks the other: a pre-order thread takes no new messages."),
    ]
    last_activity_at: EpochMs


# The caller's chats ($1): their orders, and the applications they made or received that have a
# thread (a chat_sequences row) and no order; each branch on its own index (one cannot apply to
# one's own gig, so the branches never overlap). Then, per chat, the last message (by the counter's
# seq: one index probe), the read mark and the other user; only the page's rows get their unread
# count computed (a Sort+Limit postpones the subquery).
_LIST = """
WITH chats AS (
    SELECT o.id AS chat_id, 'order' AS kind, o.id AS order_id, o.application_id, o.gig_id,
           CASE WHEN o.client_id = $1 THEN o.doer_id ELSE o.client_id END AS other_id,
           o.status, o.created_at AS opened_at
      FROM orders o WHERE o.client_id = $1 OR o.doer_id = $1
    UNION ALL  -- threads of the caller's applications (applications_doer_idx)
    SELECT a.id, 'application', NULL, a.id, a.gig_id, g.client_id, a.status, a.created_at
      FROM applications a JOIN gigs g ON g.id = a.gig_id
     WHERE a.doer_id = $1
       AND EXISTS (SELECT 1 FROM chat_sequences c WHERE c.order_id = a.id)
       AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.application_id = a.id)
    UNION ALL  -- threads of applications to the caller's gigs (gigs_client_idx, then by gig)
    SELECT a.id, 'application', NULL, a.id, a.gig_id, a.doer_id, a.status, a.created_at
      FROM gigs g JOIN applications a ON a.gig_id = g.id
     WHERE g.client_id = $1
       AND EXISTS (SELECT 1 FROM chat_sequences c WHERE c.order_id = a.id)
       AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.application_id = a.id)
), active AS (
    SELECT ch.*, coalesce(c.last_seq, 0) AS last_seq, m.id AS m_id, m.sender_id, m.text,
           m.attachments, m.client_msg_id, m.created_at AS m_created_at,
           coalesce(m.created_at, ch.opened_at) AS active_at
      FROM chats ch
      LEFT JOIN chat_sequences c ON c.order_id = ch.chat_id
      LEFT JOIN messages m ON m.order_id = ch.chat_id AND m.seq = c.last_seq
)
SELECT a.*, g.title AS gig_title, u.name, u.avatar_url,
       coalesce(r.last_read_seq, 0) AS last_read_seq,
       (SELECT count(*) FROM messages x WHERE x.order_id = a.chat_id
          AND x.seq > coalesce(r.last_read_seq, 0) AND x.sender_id <> $1) AS unread,
       EXISTS (SELECT 1 FROM user_blocks b WHERE (b.blocker_id = $1 AND b.blocked_id = a.other_id)
               OR (b.blocker_id = a.other_id AND b.blocked_id = $1)) AS blocked
  FROM active a
  JOIN gigs g ON g.id = a.gig_id
  JOIN users u ON u.id = a.other_id
  LEFT JOIN message_reads r ON r.order_id = a.chat_id AND r.user_id = $1
 WHERE $3::timestamptz IS NULL OR (a.active_at, a.chat_id) < ($3, $4::uuid)
 ORDER BY a.active_at DESC, a.chat_id DESC
 LIMIT $2
"""


def _millis(value: dt.datetime) -> int:
    return (value - _EPOCH) // dt.timedelta(milliseconds=1)


def _conversation(row: Any) -> Conversation:
    last = None
    if row["m_id"] is not None:
        last = load(
            Message,
            to_wire(
                chat.message_data(
                    {
                        "id": str(row["m_id"]),
                        "order_id": str(row["chat_id"]),
                        "seq": row["last_seq"],
                        "sender_id": str(row["sender_id"]),
                        "text": row["text"],
                        "attachments": row["attachments"],
                        "client_msg_id": row["client_msg_id"],
                        "created_at": _millis(row["m_created_at"]),
                    }
                )
            ),
        )
    return Conversation(
        id=str(row["chat_id"]),
        kind=row["kind"],
        order_id=None if row["order_id"] is None else str(row["order_id"]),
        application_id=str(row["application_id"]),
        gig_id=str(row["gig_id"]),
        gig_title=row["gig_title"],
        status=row["status"],
        other=ConversationParty(id=str(row["other_id"]), name=row["name"], avatar_url=row["avatar_url"]),
        last_message=last,
        last_seq=row["last_seq"],
        last_read_seq=row["last_read_seq"],
        unread=row["unread"],
        blocked=row["blocked"],
        last_activity_at=_millis(row["active_at"]),
    )


def _cursor(row: Any) -> str:
    # Exact microseconds, so chats active in the same millisecond still page without a gap.
    micros = (row["active_at"] - _EPOCH) // dt.timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"{micros}:{row['chat_id']}".encode()).decode().rstrip("=")


def _parse_cursor(raw: str) -> tuple[dt.datetime, str]:
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        micros, _, ident = text.partition(":")
        return _EPOCH + dt.timedelta(microseconds=int(micros)), str(uuid.UUID(ident))
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise ApiError(
            "bad_request",
            "Query parameter cursor is not one this API gave out.",
            details={"parameter": "cursor"},
        ) from None


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


@routes.get(
    "/api/conversations",
    summary="The caller's conversations (orders and pre-order threads), newest activity first",
    auth=True,
    response=list[Conversation],
    meta={"nextCursor": Annotated[str | None, msgspec.Meta(description="pass as cursor for the next page")]},
    parameters=(
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "default 20"),
        _query("cursor", {"type": "string", "maxLength": 200}, "nextCursor of the previous page"),
    ),
    errors=(400,),
)
async def list_conversations(request: web.Request) -> web.Response:
    """A page of the caller's conversations, newest activity first; `cursor` continues after it."""
    user = require_user(request)
    limit = query_int(request, "limit", 20, 1, 100)
    cursor = request.query.get("cursor")
    at, ident = _parse_cursor(cursor) if cursor else (None, None)
    rows = await request.app[POOL].fetch(_LIST, user.user_id, limit + 1, at, ident)
    page = rows[:limit]
    next_cursor = _cursor(page[-1]) if len(rows) > limit else None
    return ok([_conversation(r) for r in page], nextCursor=next_cursor)


@routes.get(
    "/api/conversations/{id}/messages",
    summary="A chat's history, oldest first: an order's or a pre-order thread's (its two users only)",
    auth=True,
    response=list[Message],
    meta={
        "limit": Annotated[int, msgspec.Meta(ge=1)],
        "nextBeforeSeq": Annotated[int, msgspec.Meta(ge=2)] | None,
    },
    parameters=(
        {
            "name": "id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
            "description": "the chat id (an order's or an application's)",
        },
        _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "default 50"),
        _query(
            "beforeSeq",
            {"type": "integer", "minimum": 1, "maximum": 2**53},
            "only messages with a smaller seq (page back from nextBeforeSeq)",
        ),
    ),
    errors=(400, 404),
)
async def chat_messages(request: web.Request) -> web.Response:
    """A page of the chat, oldest first, as GET /api/orders/{id}/messages pages an order's."""
    user = require_user(request)
    chat_id = path_uuid(request)
    pool = request.app[POOL]
    people = await threads.people(pool, chat_id)
    if people is None or user.user_id not in people:
        raise ApiError("not_found", f"No conversation {chat_id} of yours.")
    limit = query_int(request, "limit", 50, 1, MAX_LIMIT)
    before = query_int(request, "beforeSeq", 0, 1, 2**53) if request.query.get("beforeSeq") else None
    items = await chat.history(pool, chat_id, before, limit)
    oldest = items[0]["seq"] if items else None
    next_before = oldest if oldest is not None and oldest > 1 and len(items) == limit else None
    return ok(load_all(Message, items), limit=limit, nextBeforeSeq=next_before)
