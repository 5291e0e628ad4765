"""Client frames of the raw WebSocket protocol (PROTOCOL.md): parsing, validation, error codes.

Decisions where PROTOCOL.md leaves room:
- A malformed id (`orderId`, `messageId` not a UUID) is `bad_request` (a wrong field), while a
  well-formed id naming nothing is `not_found`.
- Unknown fields inside `data` are ignored (clients may be newer than the server); unknown `type`
  is `bad_request`.
- A `ref` that is not a string of 1 to 64 characters makes the frame `bad_request`, answered
  without `ref` (there is no valid ref to echo).
- `text` over 4,000 characters, more than 10 attachments, or a field over its length limit is
  `too_large`; an empty or blank `text` without attachments is `bad_request`. Text is stored as sent.
- Binary WebSocket frames are `bad_request`: every frame is JSON text.
- A NUL character in any string field is `bad_request` (PostgreSQL cannot store it).
- `PING` with a `ref` is answered by `PONG` carrying that ref (the PONG stands for the ACK).
- `TYPING_START`/`TYPING_STOP`/`UNSUBSCRIBE_CHAT` with a `ref` are ACKed with `{orderId}`.
  Typing is relayed to the sessions of the order's *other* user: the typist's own devices do not
  get it. Renewals within 3 s are not relayed again; 6 s without one ends it with a TYPING_STOP.
- The `SUBSCRIBE_CHAT` ACK comes after the replayed messages (and any live ones that arrived
  meanwhile); `lastSeq` is the order's last seq when the subscription was made.
- `AUTHENTICATE` on an authenticated connection with a fresh token of the same user answers
  `AUTHENTICATED` again (a token refresh); another user's token is `forbidden`; a bad one closes 4401.
- `ORDER_UPDATE` goes to both parties' `user:<id>` feeds only: every session subscribed to an
  order's chat belongs to one of its two parties, so it gets each update exactly once that way."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any, Final, cast
from urllib.parse import urlsplit

import msgspec
from msgspec import Struct

from hub import events
from hub.codes import ERROR_CODES
from hub.events import (  # noqa: F401 (the limits are re-exported: their historical home)
    CLIENT_EVENTS,
    MAX_ATTACHMENTS,
    MAX_CLIENT_MSG_ID,
    MAX_NAME,
    MAX_REF,
    MAX_SEQ,
    MAX_TEXT,
    MAX_TOKEN,
    MAX_URL,
    Authenticate,
    ChatSend,
    Ref,
)
from hub.frame import Frame

CLIENT_TYPES = frozenset(CLIENT_EVENTS)


class HubError(Exception):
    """An error answered to one client frame as `ERROR {code, message[, retryAfterMs]}`."""

    def __init__(self, code: str, message: str, retry_after_ms: int | None = None) -> None:
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms

    def frame(self, ref: str | None = None) -> Frame:
        """The ERROR frame for this error, answering `ref` when given."""
        code = cast(events.ErrorCode, self.code)  # checked against hub.codes.ERROR_CODES above
        return Frame.encode("ERROR", events.Error(code, self.message, self.retry_after_ms), ref)


class ClientFrame(Struct, frozen=True):
    """One validated client frame; `data` is the event's Struct from hub.events (CLIENT_EVENTS)."""

    type: str
    data: Struct
    ref: str | None

    @property
    def token(self) -> str:
        """AUTHENTICATE's token."""
        assert isinstance(self.data, Authenticate), self.type
        return self.data.token

    @property
    def since_feed_seq(self) -> int | None:
        """AUTHENTICATE's sinceFeedSeq (resume the user's feed after it), if given."""
        assert isinstance(self.data, Authenticate), self.type
        return self.data.since_feed_seq


class BadFrame(HubError):
    """A frame that could not be parsed; carries the ref when one could be read."""

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(code, message)
        self.ref = ref


class _Envelope(Struct):
    """`{type, data?, ref?}`: `type` is checked by hand (a bad one is answered with the ref), `data`
    is decoded in a second step by the decoder of its type."""

    type: object = None
    data: msgspec.Raw = msgspec.Raw(b"null")  # a Raw cannot be optional: absent reads as null
    ref: Ref | None = None


_ENVELOPE: Final = msgspec.json.Decoder(_Envelope)
_DECODERS: Final = {kind: msgspec.json.Decoder(model) for kind, model in CLIENT_EVENTS.items()}
_EMPTY: Final = b"{}"
_NULL: Final = b"null"
_NUL: Final = b"\\u0000"
_CANONICAL_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def parse(raw: str | bytes) -> ClientFrame:
    """Parse and validate one client text frame; raise BadFrame (with the frame's ref when valid)."""
    try:
        body = _ENVELOPE.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if text.endswith("`$.ref`"):
            raise BadFrame("bad_request", f"ref must be a string of 1 to {MAX_REF} characters.") from None
        got = _GOT.search(text)
        what = got.group(1) if got else "something else"
        raise BadFrame("bad_request", f"A frame must be a JSON object, not {what}.") from None
    except msgspec.DecodeError:
        raise BadFrame("bad_request", "A frame must be one JSON object: {type, data?, ref?}.") from None
    ref, kind = body.ref, body.type
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        known = ", ".join(sorted(CLIENT_TYPES))
        raise BadFrame("bad_request", f"Unknown or missing type; use one of {known}.", ref)
    data = bytes(body.data)
    if data == _NULL:
        data = _EMPTY
    try:
        value = _DECODERS[kind].decode(data)
        if _NUL in data:  # rare: JSON can only carry NUL escaped
            _no_nul(value, "")
        _CHECKS.get(kind, _none)(value)
    except msgspec.ValidationError as exc:
        code, message = _explain(str(exc))
        raise BadFrame(code, message, ref) from None
    except msgspec.DecodeError:  # e.g. an escaped lone surrogate, which UTF-8 cannot hold
        raise BadFrame("bad_request", "data is not valid JSON text.", ref) from None
    except HubError as exc:
        raise BadFrame(exc.code, exc.message, ref) from None
    return ClientFrame(kind, value, ref)


# -- what msgspec's ValidationError means to a client -------------------------------------------------

_AT = re.compile(r" - at `\$(.*)`$")
_MISSING = re.compile(r"^Object missing required field `(\w+)`")
_GOT = re.compile(r"got `(\w+)`")
_AT_MOST = re.compile(r"length <= (\d+)")
_STRINGS: Final = frozenset({"token", "text", "clientMsgId", "url", "mediaId", "name", "mime"})
_HINTS: Final = {
    "orderId": "orderId is required: the id as a UUID string.",
    "messageId": "messageId is required: the id as a UUID string.",
    "token": "token is required: the access token from /api/auth.",
    "sinceSeq": "sinceSeq must be an integer >= 0: the last seq you have.",
    "text": f"text is required: 1 to {MAX_TEXT} characters, or attachments.",
    "attachments": "attachments must be a list of {url or mediaId, name?, mime?, size?}.",
    "clientMsgId": "clientMsgId, when given, must not be empty.",
    "url": "url must be an https URL.",
    "mediaId": "mediaId must be the id of a media you uploaded (POST /api/media).",
    "size": "size must be an integer >= 0 (bytes).",
    "name": "name must be a string.",
    "mime": "mime must be a string.",
}


def _explain(text: str) -> tuple[str, str]:
    """(error code, message) for a ValidationError of event data, e.g. "Expected `str` of length
    <= 4000 - at `$.text`": a length over a limit is too_large, anything else bad_request."""
    at = _AT.search(text)
    path = at.group(1) if at else ""  # ".attachments[0].url", "" for the data object itself
    missing = _MISSING.match(text)
    if missing:
        path += "." + missing.group(1)
    if not path:
        return "bad_request", "data must be a JSON object."
    where, _, name = path.lstrip(".").rpartition(".")
    if name.startswith("attachments[") and not missing:
        return "bad_request", f"{name} must be an object {{url or mediaId, name?, mime?, size?}}."
    prefix = where + "." if where else ""
    if name in ("orderId", "messageId"):  # a string of an id's length that is no UUID: see _uuid
        return "bad_request", _HINTS[name]
    if (limit := _AT_MOST.search(text)) is not None:
        if name == "attachments":
            return "too_large", f"At most {MAX_ATTACHMENTS} attachments per message."
        return "too_large", f"{prefix}{name} must be at most {limit.group(1)} characters."
    if not missing and "length >=" not in text and name in _STRINGS:
        return "bad_request", f"{prefix}{name} must be a string."
    return "bad_request", prefix + _HINTS.get(name, f"{name} has the wrong type.")


# -- rules a schema does not state -----------------------------------------------------------------


def _no_nul(value: object, where: str) -> None:
    """Raise bad_request naming the first string field (in any Struct or list) holding a NUL."""
    if isinstance(value, Struct):
        for field in msgspec.structs.fields(value):
            _no_nul(getattr(value, field.name), f"{where}{field.encode_name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_nul(item, f"{where}[{i}].")
    elif isinstance(value, str) and "\x00" in value:
        raise HubError("bad_request", f"{where} must not contain NUL characters.")


def _uuid(value: str, name: str) -> str:
    if _CANONICAL_UUID.fullmatch(value):  # the usual form: already what str(UUID) gives
        return value
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise HubError("bad_request", f"{name} must be a UUID string.") from None


def _order(data: events.SubscribeChat | events.OrderRef) -> None:
    data.order_id = _uuid(data.order_id, "orderId")


def _read(data: events.MessageRead) -> None:
    data.message_id = _uuid(data.message_id, "messageId")


def _url_ok(url: str) -> bool:
    try:
        parts = urlsplit(url)
        # https only: a page showing the chat must not load plain-http content (mixed content).
        return parts.scheme == "https" and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed or bad bracketed host: "http://[::1"
        return False


def _chat(data: ChatSend) -> None:
    """Normalizes the optional fields: `text` "" and `attachments` [] when absent or null."""
    data.order_id = _uuid(data.order_id, "orderId")
    attachments = data.attachments = data.attachments or []
    for i, item in enumerate(attachments):
        if (item.url is None) == (item.media_id is None):
            raise HubError("bad_request", f"attachments[{i}] needs one of url (https) and mediaId.")
        if item.media_id is not None:
            item.media_id = _uuid(item.media_id, f"attachments[{i}].mediaId")
        elif item.url is not None and not _url_ok(item.url):
            raise HubError("bad_request", f"attachments[{i}].url must be an https URL.")
    text = data.text = data.text or ""
    if not text.strip() and not attachments:
        raise HubError("bad_request", f"text is required: 1 to {MAX_TEXT} characters, or attachments.")


def _none(data: Struct) -> None:
    pass


_CHECKS: Final[dict[str, Callable[[Any], None]]] = {
    "SUBSCRIBE_CHAT": _order,
    "UNSUBSCRIBE_CHAT": _order,
    "TYPING_START": _order,
    "TYPING_STOP": _order,
    "MESSAGE_READ": _read,
    "CHAT_MESSAGE": _chat,
}
