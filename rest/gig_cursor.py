"""Keyset cursors of gig lists (GET /api/gigs?cursor=...): an opaque, signed token naming the
position after a page's last gig, bound to the query it was issued for.

A position is the last row's place in the list's order (boosted first, then the sort key, created_at
and id: unique, so every gig comes exactly once), the page number it ended and the instant the walk
started (`as_of`): every page of one walk decides "boosted now?" at that instant, so a boost ending
mid-walk neither repeats nor skips a gig. The token is base64url(JSON) "." base64url(MAC); the MAC
(keyed BLAKE2b) covers the query's scope too, so an edited token, a token of another query or of
another server secret is a 400 naming `cursor`, never a wrong page."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass

import orjson

from rest.errors import ApiError

VERSION = 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,600}\.[A-Za-z0-9_-]{22}")
# The Python type of each sortBy's key value on the cursor (timestamps travel as epoch microseconds).
KEY_KINDS = {
    "createdAt": "time",
    "budgetMax": "int",
    "budgetMin": "int",
    "deadline": "time",
    "applicationsCount": "int",
    "relevance": "float",
}

Key = int | float | dt.datetime


@dataclass(frozen=True)
class Position:
    """Where the next page starts: after the gig (`boosted`, `key`, `created_at`, `gig_id`) of a walk
    that started at `as_of`; `page` is the number of the page that ended there."""

    as_of: dt.datetime
    page: int
    boosted: bool
    key: Key
    created_at: dt.datetime
    gig_id: str


def micros(value: dt.datetime) -> int:
    """A timestamp as integer epoch microseconds (exact, unlike a float)."""
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=value)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def bad_cursor(why: str) -> ApiError:
    return ApiError(
        "bad_request",
        f"Query parameter cursor must be a nextCursor of this same query ({why}).",
        details={"parameter": "cursor"},
    )


class CursorCodec:
    """Signs and checks cursors with a key derived from the server's secret."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.blake2b(secret.encode(), digest_size=32, person=b"gigwire-cursor").digest()

    def _mac(self, scope: str, payload: bytes) -> bytes:
        return hashlib.blake2b(scope.encode() + b"\x00" + payload, key=self._key, digest_size=16).digest()

    def encode(self, scope: str, sort_by: str, at: Position) -> str:
        """The token of `at` for the query `scope` sorted by `sort_by`."""
        key: Key = at.key
        if KEY_KINDS[sort_by] == "time":
            assert isinstance(key, dt.datetime)
            key = micros(key)
        fields = [VERSION, micros(at.as_of), at.page, at.boosted, key, micros(at.created_at), at.gig_id]
        payload = orjson.dumps(fields)
        return _b64(payload) + "." + _b64(self._mac(scope, payload))

    def decode(self, scope: str, sort_by: str, token: str) -> Position:
        """The position of `token`; ApiError bad_request naming `cursor` unless this codec issued it
        for `scope`."""
        if not _TOKEN.fullmatch(token):
            raise bad_cursor("not a cursor")
        body, mac = token.split(".")
        try:
            payload, tag = _unb64(body), _unb64(mac)
        except (binascii.Error, ValueError):
            raise bad_cursor("not a cursor") from None
        if not hmac.compare_digest(tag, self._mac(scope, payload)):
            raise bad_cursor("altered, or issued for other filters or another sort")
        try:
            version, as_of, page, boosted, key, created_at, gig_id = orjson.loads(payload)
            kind = KEY_KINDS[sort_by]
            # Signed by us, so well formed; checked anyway so a leaked key cannot reach SQL with junk.
            ints = (as_of, page, created_at) + ((key,) if kind != "float" else ())
            if version != VERSION or not all(type(v) is int for v in ints) or type(boosted) is not bool:
                raise ValueError
            if kind == "float" and type(key) is not float:
                raise ValueError
            return Position(
                as_of=from_micros(as_of),
                page=page,
                boosted=boosted,
                key=from_micros(key) if kind == "time" else key,
                created_at=from_micros(created_at),
                gig_id=str(uuid.UUID(gig_id)),
            )
        except (ValueError, TypeError, OverflowError, orjson.JSONDecodeError):
            raise bad_cursor("not a cursor") from None
