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

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from hub.codes import ERROR_CODES
from hub.frame import Frame

CLIENT_TYPES = frozenset(
    {
        "AUTHENTICATE",
        "SUBSCRIBE_CHAT",
        "UNSUBSCRIBE_CHAT",
        "CHAT_MESSAGE",
        "MESSAGE_READ",
        "TYPING_START",
        "TYPING_STOP",
        "PING",
    }
)
MAX_TEXT = 4000
MAX_ATTACHMENTS = 10
MAX_REF = 64
MAX_CLIENT_MSG_ID = 64
MAX_URL = 2048
MAX_NAME = 255
MAX_TOKEN = 8192
MAX_SEQ = 2**53


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
        data: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.retry_after_ms is not None:
            data["retryAfterMs"] = self.retry_after_ms
        return Frame.encode("ERROR", data, ref)


@dataclass(frozen=True)
class ClientFrame:
    """One validated client frame; `data` holds only known fields, each of the documented type."""

    type: str
    data: dict[str, Any]
    ref: str | None


class BadFrame(HubError):
    """A frame that could not be parsed; carries the ref when one could be read."""

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(code, message)
        self.ref = ref


def parse(raw: str | bytes) -> ClientFrame:
    """Parse and validate one client text frame; raise BadFrame (with the frame's ref when valid)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadFrame("bad_request", "A frame must be one JSON object: {type, data?, ref?}.") from None
    if not isinstance(body, dict):
        raise BadFrame("bad_request", "A frame must be a JSON object, not " + type(body).__name__ + ".")
    ref = body.get("ref")
    if ref is not None and (not isinstance(ref, str) or not 1 <= len(ref) <= MAX_REF):
        raise BadFrame("bad_request", f"ref must be a string of 1 to {MAX_REF} characters.")
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        known = ", ".join(sorted(CLIENT_TYPES))
        raise BadFrame("bad_request", f"Unknown or missing type; use one of {known}.", ref)
    data = body.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadFrame("bad_request", "data must be a JSON object.", ref)
    try:
        return ClientFrame(kind, _VALIDATORS[kind](data), ref)
    except HubError as exc:
        raise BadFrame(exc.code, exc.message, ref) from None


def _uuid(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or len(value) > 64:
        raise HubError("bad_request", f"{name} is required: the id as a UUID string.")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise HubError("bad_request", f"{name} must be a UUID string.") from None


def _text(item: dict[str, Any], name: str, limit: int, where: str = "") -> str | None:
    value = item.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise HubError("bad_request", f"{where}{name} must be a string.")
    if len(value) > limit:
        raise HubError("too_large", f"{where}{name} must be at most {limit} characters.")
    if "\x00" in value:  # PostgreSQL text and jsonb cannot hold NUL
        raise HubError("bad_request", f"{where}{name} must not contain NUL characters.")
    return value


def _authenticate(data: dict[str, Any]) -> dict[str, Any]:
    token = _text(data, "token", MAX_TOKEN)
    if not token:
        raise HubError("bad_request", "token is required: the access token from /api/auth.")
    return {"token": token}


def _order(data: dict[str, Any]) -> dict[str, Any]:
    return {"orderId": _uuid(data, "orderId")}


def _subscribe(data: dict[str, Any]) -> dict[str, Any]:
    out = _order(data)
    since = data.get("sinceSeq")
    if since is not None:
        if isinstance(since, bool) or not isinstance(since, int) or not 0 <= since <= MAX_SEQ:
            raise HubError("bad_request", "sinceSeq must be an integer >= 0: the last seq you have.")
        out["sinceSeq"] = since
    return out


def _attachment(item: Any, i: int) -> dict[str, Any]:
    where = f"attachments[{i}]."
    if not isinstance(item, dict):
        raise HubError("bad_request", f"attachments[{i}] must be an object {{url, name?, mime?, size?}}.")
    url = _text(item, "url", MAX_URL, where)
    parts = urlsplit(url) if url else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise HubError("bad_request", f"{where}url must be an http or https URL.")
    out: dict[str, Any] = {"url": url}
    for name in ("name", "mime"):
        value = _text(item, name, MAX_NAME, where)
        if value is not None:
            out[name] = value
    size = item.get("size")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SEQ:
            raise HubError("bad_request", f"{where}size must be an integer >= 0 (bytes).")
        out["size"] = size
    return out


def _chat(data: dict[str, Any]) -> dict[str, Any]:
    order_id = _uuid(data, "orderId")
    raw = data.get("attachments")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise HubError("bad_request", "attachments must be a list of {url, name?, mime?, size?}.")
    if len(raw) > MAX_ATTACHMENTS:
        raise HubError("too_large", f"At most {MAX_ATTACHMENTS} attachments per message.")
    attachments = [_attachment(item, i) for i, item in enumerate(raw)]
    text = _text(data, "text", MAX_TEXT)
    if text is None:
        text = ""
    if not text.strip() and not attachments:
        raise HubError("bad_request", f"text is required: 1 to {MAX_TEXT} characters, or attachments.")
    client_msg_id = _text(data, "clientMsgId", MAX_CLIENT_MSG_ID)
    if client_msg_id == "":
        raise HubError("bad_request", "clientMsgId, when given, must not be empty.")
    return {"orderId": order_id, "text": text, "attachments": attachments, "clientMsgId": client_msg_id}


def _read(data: dict[str, Any]) -> dict[str, Any]:
    return {"messageId": _uuid(data, "messageId")}


def _none(data: dict[str, Any]) -> dict[str, Any]:
    return {}


_VALIDATORS = {
    "AUTHENTICATE": _authenticate,
    "SUBSCRIBE_CHAT": _subscribe,
    "UNSUBSCRIBE_CHAT": _order,
    "CHAT_MESSAGE": _chat,
    "MESSAGE_READ": _read,
    "TYPING_START": _order,
    "TYPING_STOP": _order,
    "PING": _none,
}
