"""Typed server events (docs/protocol.md, "Server events"), parsed from a frame's `{type, data}`.

Every event is a frozen dataclass; `parse(type, data)` builds the one for a frame (None for a type
this SDK does not know: a newer server). The client adds `StateChange` for its own connection."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Json = dict[str, Any]


@dataclass(frozen=True)
class Authenticated:
    """AUTHENTICATED: the session is open; `feed_seq` is the user's last feedSeq when it joined."""

    user_id: str
    session_id: str
    server_time: int
    feed_seq: int


@dataclass(frozen=True)
class ChatMessage:
    """CHAT_MESSAGE: a stored message of an order's chat (`seq` 1, 2, 3... per order)."""

    id: str
    order_id: str
    seq: int
    sender_id: str
    text: str
    attachments: list[Json]
    client_msg_id: str | None
    created_at: int


@dataclass(frozen=True)
class ReadReceipt:
    """MESSAGE_READ: `user_id` has read the order's chat up to `seq`."""

    order_id: str
    user_id: str
    message_id: str
    seq: int
    read_at: int


@dataclass(frozen=True)
class Typing:
    """TYPING_START (`active` True) or TYPING_STOP (False) of the other party."""

    order_id: str
    user_id: str
    active: bool


@dataclass(frozen=True)
class OrderUpdate:
    """ORDER_UPDATE (user feed): an order changed status."""

    order_id: str
    status: str
    escrow_state: str
    previous_status: str | None
    actor_id: str | None
    updated_at: int
    feed_seq: int


@dataclass(frozen=True)
class NewApplication:
    """NEW_APPLICATION (user feed): a doer applied to the user's gig."""

    gig_id: str
    application_id: str
    doer_id: str
    bid_amount: int
    feed_seq: int


@dataclass(frozen=True)
class Notification:
    """NOTIFICATION (user feed): an in-app notification (also published by the server API)."""

    id: str
    type: str
    title: str
    body: str
    data: Json
    created_at: int
    feed_seq: int


@dataclass(frozen=True)
class FeedExpired:
    """FEED_EXPIRED: feed events after `since_feed_seq` are no longer kept: refetch state over REST.
    Live events follow from `feed_seq`."""

    since_feed_seq: int
    feed_seq: int


@dataclass(frozen=True)
class SessionExpiring:
    """SESSION_EXPIRING: the token expires at `expires_at` (the client renews it by itself)."""

    expires_at: int


@dataclass(frozen=True)
class ConversationUpdated:
    """CONVERSATION_UPDATED (while `watch_conversations()`): a message in one of the user's chats
    this client has not subscribed to. Best effort, not replayed: refetch GET /api/conversations
    after a reconnect."""

    order_id: str
    message_id: str
    seq: int
    sender_id: str
    preview: str
    attachments: int
    created_at: int


@dataclass(frozen=True)
class ServerError:
    """ERROR not answering one of the SDK's requests (e.g. a revoked session, before its close)."""

    code: str
    message: str
    retry_after_ms: int | None = None


@dataclass(frozen=True)
class StateChange:
    """The SDK's own event: the connection's state changed. `close_code` is the WebSocket close
    code when a connection ended (None when it was cut without one); `error` is set for `closed`
    when the client stopped on an error (a refused login)."""

    state: Literal["connecting", "connected", "disconnected", "closed"]
    close_code: int | None = None
    reason: str = ""
    error: Exception | None = field(default=None, compare=False)


FeedEvent = OrderUpdate | NewApplication | Notification
Event = (
    Authenticated
    | ChatMessage
    | ReadReceipt
    | Typing
    | OrderUpdate
    | NewApplication
    | Notification
    | FeedExpired
    | SessionExpiring
    | ConversationUpdated
    | ServerError
    | StateChange
)


def chat_message(d: Json) -> ChatMessage:
    """A CHAT_MESSAGE's data (realtime or a REST history item) as a ChatMessage."""
    return ChatMessage(
        id=d["id"],
        order_id=d["orderId"],
        seq=int(d["seq"]),
        sender_id=d["senderId"],
        text=d.get("text") or "",
        attachments=list(d.get("attachments") or []),
        client_msg_id=d.get("clientMsgId"),
        created_at=int(d["createdAt"]),
    )


def parse(kind: str, d: Json) -> Event | None:
    """The typed event of a server frame; None for a type the SDK does not know. KeyError or
    ValueError for a known type whose data lacks a field."""
    if kind == "CHAT_MESSAGE":
        return chat_message(d)
    if kind == "MESSAGE_READ":
        return ReadReceipt(d["orderId"], d["userId"], d["messageId"], int(d["seq"]), int(d["readAt"]))
    if kind in ("TYPING_START", "TYPING_STOP"):
        return Typing(d["orderId"], d["userId"], kind == "TYPING_START")
    if kind == "ORDER_UPDATE":
        return OrderUpdate(
            d["orderId"],
            d["status"],
            d["escrowState"],
            d.get("previousStatus"),
            d.get("actorId"),
            int(d["updatedAt"]),
            int(d["feedSeq"]),
        )
    if kind == "NEW_APPLICATION":
        return NewApplication(
            d["gigId"], d["applicationId"], d["doerId"], int(d["bidAmount"]), int(d["feedSeq"])
        )
    if kind == "NOTIFICATION":
        return Notification(
            d["id"], d["type"], d["title"], d.get("body") or "", dict(d.get("data") or {}),
            int(d["createdAt"]), int(d["feedSeq"]),
        )  # fmt: skip
    if kind == "FEED_EXPIRED":
        return FeedExpired(int(d["sinceFeedSeq"]), int(d["feedSeq"]))
    if kind == "CONVERSATION_UPDATED":
        return ConversationUpdated(
            d["orderId"], d["messageId"], int(d["seq"]), d["senderId"], d.get("preview") or "",
            int(d.get("attachments") or 0), int(d["createdAt"]),
        )  # fmt: skip
    if kind == "SESSION_EXPIRING":
        return SessionExpiring(int(d["expiresAt"]))
    if kind == "AUTHENTICATED":
        return Authenticated(d["userId"], d["sessionId"], int(d["serverTime"]), int(d.get("feedSeq") or 0))
    if kind == "ERROR":
        retry = d.get("retryAfterMs")
        return ServerError(
            str(d.get("code")), str(d.get("message")), int(retry) if retry is not None else None
        )
    return None
