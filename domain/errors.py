"""The one error type of domain code: a refusal the caller can act on, named by a stable code.

Codes are those of the REST error table (rest.errors.STATUS maps each to its HTTP status), so the
HTTP API answers a DomainError exactly as it answers its own errors; other callers (the workers)
log the code and message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Every code a DomainError may carry; the keys of rest.errors.STATUS (a test keeps them equal).
CODES = (
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "conflict",
    "too_large",
    "unprocessable",
    "rate_limited",
    "internal",
    "bad_gateway",
    "unavailable",
)


class DomainError(Exception):
    """A refused operation: `code` (one of CODES) says what kind, `message` what to do about it, and
    `details` (optional, JSON-able) the figures behind it."""

    def __init__(self, code: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = dict(details) if details else None
