"""The SDK's errors: one base class, `GigwireError`, with the server's error code."""

from __future__ import annotations


class GigwireError(Exception):
    """An error from gigwire (a realtime ERROR answer or a REST error body), or the SDK's own
    refusal (`queue_full`, `closed`, `timeout`). `code` is the protocol's error code."""

    def __init__(self, code: str, message: str, retry_after_ms: int | None = None, status: int | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms
        self.status = status
        """The HTTP status, for a REST error."""


class AuthError(GigwireError):
    """The login is over: the refresh token was refused (log in again). The client stops."""


class ClosedError(GigwireError):
    """The client was closed before the operation finished."""

    def __init__(self, message: str = "The client is closed.") -> None:
        super().__init__("closed", message)
