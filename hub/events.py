"""The realtime protocol's event data, both directions, as msgspec Structs: written once, they
validate client frames (hub/protocol.py), encode server frames (hub/frame.py) and generate the
AsyncAPI document (hub/asyncapi.py).

Wire names are camelCase (`rename="camel"`); unknown fields in client data are ignored, as the
protocol promises newer clients. Limits are `Meta` constraints so that they appear in the schema;
the few rules a schema cannot state (blank text, URL scheme, UUID normal form) are checked in
hub/protocol.py."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, get_args

import msgspec
from msgspec import Meta, Struct

from hub.codes import ERROR_CODES

MAX_TEXT: Final = 4000
MAX_ATTACHMENTS: Final = 10
MAX_REF: Final = 64
MAX_CLIENT_MSG_ID: Final = 64
MAX_URL: Final = 2048
MAX_NAME: Final = 255
MAX_TOKEN: Final = 8192
MAX_ID: Final = 64
MAX_SEQ: Final = 2**53

NO_NUL: Final = "^[^\\u0000]*$"  # PostgreSQL text and jsonb cannot hold NUL


def _text(limit: int, description: str, min_length: int = 0) -> Meta:
    # The NUL rule is in the schema but checked by hub/protocol.py: JSON spells NUL `\u0000`, so
    # only a frame containing that needs looking at, and a regex on every string costs ~1 us a frame.
    return Meta(
        min_length=min_length,
        max_length=limit,
        description=description,
        extra_json_schema={"pattern": NO_NUL},
    )


Uuid = Annotated[str, Meta(max_length=MAX_ID, extra_json_schema={"format": "uuid"})]
Count = Annotated[int, Meta(ge=0, le=MAX_SEQ)]
EpochMs = Annotated[int, Meta(description="Epoch milliseconds.")]
Ref = Annotated[str, Meta(min_length=1, max_length=MAX_REF, description="Echoed on the answer.")]


class _Data(Struct, rename="camel"):
    """Base of every event's data: camelCase on the wire."""


class _Sparse(_Data, omit_defaults=True):
    """Data whose optional fields are left out of the wire when unset."""


# -- client to server ------------------------------------------------------------------------------


class Authenticate(_Data):
    """AUTHENTICATE: the access token from /api/auth; with sinceFeedSeq (the last feedSeq the client
    saw), every feed event after it is replayed first (or FEED_EXPIRED when no longer kept)."""

    token: Annotated[str, _text(MAX_TOKEN, "An access token (JWT).", min_length=1)]
    since_feed_seq: Count | None = None


ChatId = Annotated[
    str,
    Meta(
        max_length=MAX_ID,
        extra_json_schema={"format": "uuid"},
        description="The chat: an order's id, or an application's id for its pre-order thread (the"
        " order opened from it takes the same id, so the thread continues as the order's chat).",
    ),
]


class SubscribeChat(_Sparse):
    """SUBSCRIBE_CHAT: join an order's chat (or an application's pre-order thread); with sinceSeq,
    every later message is replayed first."""

    order_id: ChatId
    since_seq: Count | None = None


class OrderRef(_Data):
    """UNSUBSCRIBE_CHAT, TYPING_START, TYPING_STOP: the chat (an order's or application's id)."""

    order_id: ChatId


class Attachment(_Sparse):
    """An attachment of a chat message: exactly one of `mediaId` (a chat_attachment the sender
    uploaded with POST /api/media; its mime and size are then the server's, and both parties get a
    link to it from GET /api/media/{id}) and `url` (an https URL), with optional name, MIME type
    and size."""

    url: Annotated[str, _text(MAX_URL, "An https URL with a host; absent with mediaId.")] | None = None
    media_id: Annotated[str, Meta(max_length=MAX_ID, extra_json_schema={"format": "uuid"})] | None = None
    name: Annotated[str, _text(MAX_NAME, "File name.")] | None = None
    mime: Annotated[str, _text(MAX_NAME, "MIME type.")] | None = None
    size: Annotated[int, Meta(ge=0, le=MAX_SEQ, description="Bytes.")] | None = None


class ChatSend(_Sparse):
    """CHAT_MESSAGE from a client: text (1 to 4,000 characters unless attachments are given), in an
    order's chat or an application's pre-order thread."""

    order_id: ChatId
    text: Annotated[str, _text(MAX_TEXT, "Stored as sent; may be empty with attachments.")] | None = None
    attachments: Annotated[list[Attachment], Meta(max_length=MAX_ATTACHMENTS)] | None = None
    client_msg_id: (
        Annotated[str, _text(MAX_CLIENT_MSG_ID, "The sender's id: a resend is stored once.", 1)] | None
    ) = None


class MessageRead(_Data):
    """MESSAGE_READ from a client: move the reader's mark up to this message."""

    message_id: Uuid


class WatchConversations(_Sparse):
    """WATCH_CONVERSATIONS: from now on (or, with `enabled` false, no longer) get
    CONVERSATION_UPDATED for messages in the caller's chats this session is not subscribed to."""

    enabled: bool | None = None  # absent or null: true


class Ping(_Data):
    """PING: no fields; answered by PONG."""


# -- server to client ------------------------------------------------------------------------------


class Authenticated(_Data):
    """AUTHENTICATED: the session is open (also the Socket.IO AUTHENTICATE ack)."""

    user_id: str
    session_id: str
    server_time: EpochMs
    feed_seq: Annotated[int, Meta(ge=0, description="The user's last feedSeq at authentication.")]


class ChatMessage(_Data):
    """CHAT_MESSAGE from the server: a stored message (also a REST history item)."""

    id: str
    order_id: str
    seq: int
    sender_id: str
    text: str
    attachments: list[Attachment]
    client_msg_id: str | None
    created_at: EpochMs


class ReadReceipt(_Data):
    """MESSAGE_READ from the server: a participant's read mark moved."""

    order_id: str
    user_id: str
    message_id: str
    seq: int
    read_at: EpochMs


class Typing(_Data):
    """TYPING_START, TYPING_STOP from the server: the other party types, or stopped."""

    order_id: str
    user_id: str


class OrderUpdate(_Data):
    """ORDER_UPDATE: an order changed status (to both parties' user feeds)."""

    order_id: str
    status: str
    escrow_state: str
    previous_status: str | None
    actor_id: str | None
    updated_at: EpochMs


class NewApplication(_Data):
    """NEW_APPLICATION: a doer applied to the user's gig (amount in minor units)."""

    gig_id: str
    application_id: str
    doer_id: str
    bid_amount: int


class Notification(_Data):
    """NOTIFICATION: an in-app notification (also in the user's inbox over REST)."""

    id: str
    type: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: EpochMs


class ConversationUpdated(_Data):
    """CONVERSATION_UPDATED: a message was stored in one of the user's chats (an order's, or a
    pre-order thread named by its application's id), sent to both participants' sessions whether
    or not they subscribed to the chat, to keep a conversation list live. Best effort: not stored,
    not replayed, no feedSeq; after a reconnect refetch GET /api/conversations."""

    order_id: Annotated[str, Meta(description="The chat id: an order's id or an application's id.")]
    message_id: str
    seq: int
    sender_id: str
    preview: Annotated[str, Meta(max_length=140, description="The text's first 140 characters.")]
    attachments: Annotated[int, Meta(ge=0, description="How many attachments the message has.")]
    created_at: EpochMs


PREVIEW: Final = 140


class FeedExpired(_Data):
    """FEED_EXPIRED: the feed events after sinceFeedSeq are no longer kept (FEED_RETENTION) or
    sinceFeedSeq is ahead of the feed; refetch state over REST. Live events follow from feedSeq."""

    since_feed_seq: int
    feed_seq: int


FEED_SEQ: Final = {
    "type": "integer",
    "minimum": 1,
    "description": "The event's place in the user's feed (gapless per user); resume after it with"
    " sinceFeedSeq. Absent when the event is not from the feed.",
}
"""The `feedSeq` every feed event's data carries (added by hub.feed; documented by hub.asyncapi)."""
FEED_EVENTS: Final = ("ORDER_UPDATE", "NEW_APPLICATION", "NOTIFICATION")


class SubscribeAck(_Data):
    """ACK of SUBSCRIBE_CHAT, sent after the replayed messages."""

    order_id: str
    last_seq: int
    replayed: int


class OrderAck(_Data):
    """ACK of UNSUBSCRIBE_CHAT, TYPING_START and TYPING_STOP."""

    order_id: str


class ChatAck(_Data):
    """ACK of CHAT_MESSAGE: the stored message (the first one stored, for a resend)."""

    id: str
    seq: int
    created_at: EpochMs
    client_msg_id: str | None


class ReadAck(_Data):
    """ACK of MESSAGE_READ: the reader's mark in the order."""

    order_id: str
    seq: int


class WatchAck(_Data):
    """ACK of WATCH_CONVERSATIONS: whether the session now gets CONVERSATION_UPDATED."""

    watching: bool


class Empty(_Data):
    """No fields (the Socket.IO ack of PING)."""


ErrorCode = Literal[
    "bad_request", "unauthorized", "forbidden", "not_found", "rate_limited", "too_large", "internal"
]


class Error(_Sparse):
    """ERROR: `retryAfterMs` only with rate_limited; with the frame's ref when it answers one."""

    code: ErrorCode
    message: str
    retry_after_ms: Annotated[int, Meta(ge=0)] | None = None


# The tables below are the protocol's event list; hub/asyncapi.py documents exactly these.
CLIENT_EVENTS: Final[dict[str, type[Struct]]] = {
    "AUTHENTICATE": Authenticate,
    "SUBSCRIBE_CHAT": SubscribeChat,
    "UNSUBSCRIBE_CHAT": OrderRef,
    "CHAT_MESSAGE": ChatSend,
    "MESSAGE_READ": MessageRead,
    "TYPING_START": OrderRef,
    "TYPING_STOP": OrderRef,
    "WATCH_CONVERSATIONS": WatchConversations,
    "PING": Ping,
}
# None: the frame has no data (PONG); ACK's data is one of ACKS.
SERVER_EVENTS: Final[dict[str, type[Struct] | None]] = {
    "AUTHENTICATED": Authenticated,
    "CHAT_MESSAGE": ChatMessage,
    "MESSAGE_READ": ReadReceipt,
    "TYPING_START": Typing,
    "TYPING_STOP": Typing,
    "ORDER_UPDATE": OrderUpdate,
    "NEW_APPLICATION": NewApplication,
    "NOTIFICATION": Notification,
    "FEED_EXPIRED": FeedExpired,
    "CONVERSATION_UPDATED": ConversationUpdated,
    "ACK": None,
    "ERROR": Error,
    "PONG": None,
}
# The ACK data answering each client event (AUTHENTICATE and PING are answered by their own events
# on /ws; on Socket.IO their acks carry AUTHENTICATED's data and {}).
ACKS: Final[dict[str, type[Struct]]] = {
    "AUTHENTICATE": Authenticated,
    "SUBSCRIBE_CHAT": SubscribeAck,
    "UNSUBSCRIBE_CHAT": OrderAck,
    "CHAT_MESSAGE": ChatAck,
    "MESSAGE_READ": ReadAck,
    "TYPING_START": OrderAck,
    "TYPING_STOP": OrderAck,
    "WATCH_CONVERSATIONS": WatchAck,
    "PING": Empty,
}
# The codes themselves, with their meanings, are hub.codes' (the one place): this Literal is their type.
assert set(get_args(ErrorCode)) == ERROR_CODES, "hub.events.ErrorCode must list hub.codes.ERROR_CODES"

encoder: Final = msgspec.json.Encoder()
"""The one encoder of server frames (dicts and Structs alike)."""


def to_wire(data: Struct | list[Any]) -> Any:
    """`data` as plain JSON values (for code that still hands dicts on, e.g. orjson or jsonb)."""
    return msgspec.to_builtins(data)


# -- sessions (the right to a session ends) ----------------------------------------------------------


class SessionExpiring(_Data):
    """SESSION_EXPIRING: the session's access token expires at `expiresAt` (sent 60 s before, or a
    quarter of the token's lifetime before when shorter); AUTHENTICATE with a fresh token of the
    same user moves the expiry, otherwise the session ends then with ERROR unauthorized and 4401."""

    expires_at: EpochMs


class SessionRevoked(_Sparse):
    """SESSION_REVOKED (a control event between processes, never sent to a client): every hub
    closes the user's sessions, only those of the login `familyId` when given, with ERROR
    unauthorized and close 4401. `reason`: logout, refresh_reused, account_deleted, banned,
    server_disconnect."""

    user_id: str
    reason: str
    family_id: str | None = None


SERVER_EVENTS["SESSION_EXPIRING"] = SessionExpiring
