"""Every close code and error code of the realtime protocol, with what it means to a client. The
transports, the session flow and the RFC 6455 reader take them from here; nothing else spells them.

Close codes are those of a raw /ws connection (Socket.IO maps them: 4401 and 4408 disconnect the
namespace, the others end the Engine.IO transport). Error codes are the `code` of an ERROR frame,
of a Socket.IO error ack, and of HubError."""

from __future__ import annotations

NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
NO_STATUS = 1005
ABNORMAL = 1006
INVALID_DATA = 1007
POLICY_VIOLATION = 1008
TOO_BIG = 1009
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013
UNAUTHORIZED = 4401
AUTH_TIMEOUT = 4408

CLOSE_CODES: dict[int, str] = {
    NORMAL: "normal closure; also the answer to a client's close without a code",
    GOING_AWAY: "the server is shutting down or restarting: reconnect",
    PROTOCOL_ERROR: "the client broke RFC 6455 (unmasked frame, RSV bits, bad opcode or continuation)",
    NO_STATUS: "never sent: a client close frame without a code (answered with 1000)",
    ABNORMAL: "never sent: recorded when the connection was lost without a close frame",
    INVALID_DATA: "a text message or close reason that is not UTF-8",
    POLICY_VIOLATION: "the connection kept sending over its rate limits after being told (rate_limited)",
    TOO_BIG: "a message over WS_MAX_FRAME_BYTES (or in too many fragments)",
    INTERNAL_ERROR: "the server failed handling the connection's frames",
    TRY_AGAIN_LATER: "too slow a reader: its queue overflowed; reconnect and resume with sinceSeq",
    UNAUTHORIZED: "no valid token (refused, expired, or too many frames before AUTHENTICATE)",
    AUTH_TIMEOUT: "no AUTHENTICATE within WS_AUTH_TIMEOUT seconds",
}
"""Every close code, with its meaning (the protocol documents are written from this)."""

ERROR_MEANINGS: dict[str, str] = {
    "bad_request": "the frame is not valid: not JSON, unknown type, a missing or wrong field",
    "unauthorized": "no valid token, or a frame other than AUTHENTICATE before authenticating",
    "forbidden": "not allowed: not a participant of the order, or another user's token",
    "not_found": "a well-formed id that names nothing",
    "rate_limited": "over the connection's budget of events (chat messages, or any other event); retryAfterMs"
    " says when to try again; a connection that keeps going is closed 1008",
    "too_large": "a field, text or attachment list over its limit",
    "internal": "the server failed or its database is busy: the message says what was not done; retry",
}
"""Every error code of an ERROR frame (or Socket.IO error ack), with its meaning."""

ERROR_CODES = frozenset(ERROR_MEANINGS)
