"""/api/notifications: the caller's inbox (cursor paging, unread count, read marks, deletion) and
their preferences per notification type and channel (inbox, live, push; `inApp` is the old name of
`inbox`, still accepted and answered). Notifications are created by `domain.notify.notify` in the
transaction of whatever they tell about (domain/notices.py says which)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import UNSET, UnsetType

from domain.notify import NOTIFICATION_TYPES
from hub.keys import POOL
from hub.model import EpochMs, Uuid
from rest.api import Body, Deleted, FieldErrors, Routes, Wire, load, ok
from rest.errors import ApiError
from rest.http import path_uuid, query_int, require_user

routes = Routes("notifications")

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Every column of a notifications row, and whether it was read.
_COLUMNS = "*, read_at IS NOT NULL AS read"
Count = Annotated[int, msgspec.Meta(ge=0)]


class Notification(Wire):
    """One notification of the caller's inbox."""

    id: Uuid
    type: str
    title: str
    body: str
    data: dict[str, Any]
    read: bool
    read_at: EpochMs | None
    created_at: EpochMs


class UnreadCount(Wire):
    """How many notifications are unread."""

    count: Count


class MarkedRead(Wire):
    """How many notifications were marked read."""

    updated: Count


class Cleared(Wire):
    """How many notifications were deleted."""

    deleted: Count


class Channels(Wire):
    """Where notifications of one type go: the inbox (GET /api/notifications), live (the
    NOTIFICATION event on the user's sessions) and push (their devices)."""

    inbox: bool
    live: bool
    push: bool
    in_app: bool = msgspec.field(default=True)
    """The same as inbox (its old name, for old clients)."""

    def __post_init__(self) -> None:
        self.in_app = self.inbox


class ChannelsChange(Body):
    """The channels of one type to change: any of inbox, live, push (inApp: the old name of inbox)."""

    inbox: bool | UnsetType = UNSET
    live: bool | UnsetType = UNSET
    push: bool | UnsetType = UNSET
    in_app: bool | UnsetType = UNSET

    def inbox_value(self) -> bool | UnsetType:
        """inbox, else inApp (a body giving both with different values is refused earlier)."""
        return self.inbox if self.inbox is not UNSET else self.in_app

    def empty(self) -> bool:
        return all(v is UNSET for v in (self.inbox, self.live, self.push, self.in_app))


# One field per notification type, named as the type is (no camelCase).
Preferences = msgspec.defstruct(
    "Preferences",
    [(t, Channels) for t in NOTIFICATION_TYPES],
    bases=(Wire,),
    rename=lambda name: name,
    kw_only=True,
    namespace={"__doc__": "Per notification type, whether it goes to the inbox, live and to push."},
)


class _AnyName(Mapping[str, str]):
    """The same reason for every name (Body.unknown_reasons for a body keyed by type)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __getitem__(self, name: str) -> str:
        return self.reason

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _check_change(change: msgspec.Struct) -> None:
    """PreferencesChange's rule: each type sent changes a channel, and at least one type is sent."""
    problems = {}
    for name in NOTIFICATION_TYPES:
        value = getattr(change, name)
        if not isinstance(value, ChannelsChange):
            continue
        if value.empty():
            problems[name] = "must be an object with inbox, live and/or push (or inApp)"
        elif UNSET not in (value.inbox, value.in_app) and value.inbox != value.in_app:
            problems[name] = "inbox and inApp are the same channel; give one value"
    if problems:
        raise FieldErrors(problems)
    if all(getattr(change, name) is UNSET for name in NOTIFICATION_TYPES):
        raise FieldErrors({"body": "names no notification type"})


PreferencesChange = msgspec.defstruct(
    "PreferencesChange",
    [(t, ChannelsChange | UnsetType, UNSET) for t in NOTIFICATION_TYPES],
    bases=(Body,),
    rename=lambda name: name,
    kw_only=True,
    namespace={
        "__doc__": "PUT /api/notifications/preferences: {type: {inbox?, live?, push?}} (inApp: the old name"
        " of inbox) for one or more types.",
        "__post_init__": _check_change,
        "unknown_reasons": _AnyName(f"is not a notification type (one of {', '.join(NOTIFICATION_TYPES)})"),
    },
)


def _cursor(row: Any) -> str:
    # Exact microseconds, so rows created in the same millisecond still page without a gap.
    micros = (row["created_at"] - _EPOCH) // dt.timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"{micros}:{row['id']}".encode()).decode().rstrip("=")


def _parse_cursor(raw: str) -> tuple[dt.datetime, str]:
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        micros, _, ident = text.partition(":")
        return _EPOCH + dt.timedelta(microseconds=int(micros)), str(uuid.UUID(ident))
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise ApiError("bad_request", "Query parameter cursor is not one this API gave out.") from None


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


@routes.get(
    "/api/notifications",
    summary="The caller's notifications, newest first",
    auth=True,
    response=list[Notification],
    meta={
        "nextCursor": Annotated[str | None, msgspec.Meta(description="pass as cursor for the next page")],
        "unreadCount": Count,
    },
    parameters=(
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "default 20"),
        _query("cursor", {"type": "string"}, "nextCursor of the previous page"),
        _query("unread", {"type": "string", "enum": ["true", "false"]}, "true: only unread ones"),
    ),
    errors=(400,),
)
async def list_notifications(request: web.Request) -> web.Response:
    """The caller's notifications, newest first; `cursor` continues after the last page."""
    user = require_user(request)
    limit = query_int(request, "limit", 20, 1, 100)
    unread = request.query.get("unread", "")
    if unread not in ("", "true", "false"):
        raise ApiError("bad_request", "Query parameter unread must be true or false.")
    cursor = request.query.get("cursor")
    args: list[Any] = [user.user_id, limit + 1]
    where = "user_id = $1"
    if unread == "true":
        where += " AND read_at IS NULL"
    if cursor:
        at, ident = _parse_cursor(cursor)
        args += [at, ident]
        where += " AND (created_at, id) < ($3, $4::uuid)"
    async with request.app[POOL].acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM notifications WHERE {where} ORDER BY created_at DESC, id DESC LIMIT $2",
            *args,
        )
        unread_count = await conn.fetchval(
            "SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL", user.user_id
        )
    page = rows[:limit]
    next_cursor = _cursor(page[-1]) if len(rows) > limit else None
    return ok([load(Notification, r) for r in page], nextCursor=next_cursor, unreadCount=unread_count)


@routes.get(
    "/api/notifications/unread-count",
    summary="How many notifications are unread",
    auth=True,
    response=UnreadCount,
)
async def unread_count(request: web.Request) -> web.Response:
    """How many of the caller's notifications are unread."""
    user = require_user(request)
    count = await request.app[POOL].fetchval(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL", user.user_id
    )
    return ok(UnreadCount(count=count))


@routes.post(
    "/api/notifications/mark-all-read", summary="Mark every notification read", auth=True, response=MarkedRead
)
async def mark_all_read(request: web.Request) -> web.Response:
    """Mark every unread notification of the caller read; returns how many changed."""
    user = require_user(request)
    status = await request.app[POOL].execute(
        "UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL", user.user_id
    )
    return ok(MarkedRead(updated=int(status.split()[-1])))


@routes.delete(
    "/api/notifications/clear-all", summary="Delete every notification", auth=True, response=Cleared
)
async def clear_all(request: web.Request) -> web.Response:
    """Delete every notification of the caller; returns how many went."""
    user = require_user(request)
    status = await request.app[POOL].execute("DELETE FROM notifications WHERE user_id = $1", user.user_id)
    return ok(Cleared(deleted=int(status.split()[-1])))


@routes.post(
    "/api/notifications/{id}/read",
    summary="Mark one notification read",
    auth=True,
    response=Notification,
    errors=(404,),
)
async def mark_read(request: web.Request) -> web.Response:
    """Mark one of the caller's notifications read (again is fine); 404 when not theirs."""
    user = require_user(request)
    ident = path_uuid(request)
    row = await request.app[POOL].fetchrow(
        "UPDATE notifications SET read_at = coalesce(read_at, now()) WHERE id = $1 AND user_id = $2"
        f" RETURNING {_COLUMNS}",
        ident,
        user.user_id,
    )
    if row is None:
        raise ApiError("not_found", f"No notification {ident} of yours.")
    return ok(load(Notification, row))


@routes.delete(
    "/api/notifications/{id}", summary="Delete one notification", auth=True, response=Deleted, errors=(404,)
)
async def delete_one(request: web.Request) -> web.Response:
    """Delete one of the caller's notifications; 404 when not theirs (or already gone)."""
    user = require_user(request)
    ident = path_uuid(request)
    status = await request.app[POOL].execute(
        "DELETE FROM notifications WHERE id = $1 AND user_id = $2", ident, user.user_id
    )
    if status.endswith(" 0"):
        raise ApiError("not_found", f"No notification {ident} of yours.")
    return ok(Deleted(id=ident))


async def _preferences(request: web.Request, user_id: str) -> msgspec.Struct:
    rows = await request.app[POOL].fetch(
        "SELECT type, in_app, live, push FROM notification_preferences WHERE user_id = $1", user_id
    )
    stored = {r["type"]: Channels(inbox=r["in_app"], live=r["live"], push=r["push"]) for r in rows}
    everything_on = Channels(inbox=True, live=True, push=True)
    return Preferences(**{t: stored.get(t, everything_on) for t in NOTIFICATION_TYPES})


@routes.get(
    "/api/notifications/preferences",
    summary="Notification preferences per type and channel",
    auth=True,
    response=Preferences,
)
async def get_preferences(request: web.Request) -> web.Response:
    """Per notification type, whether it goes to the inbox, live and to push (all on by default)."""
    user = require_user(request)
    return ok(await _preferences(request, user.user_id))


@routes.put(
    "/api/notifications/preferences",
    summary="Change notification preferences",
    description="{type: {inbox?, live?, push?}}; inApp is the old name of inbox. Types and channels not"
    " sent stay as they are.",
    auth=True,
    body=PreferencesChange,
    response=Preferences,
)
async def put_preferences(request: web.Request, body: msgspec.Struct) -> web.Response:
    """Change some preferences: {type: {inbox?, live?, push?}} (inApp for inbox); types and
    channels not sent stay as they are."""
    user = require_user(request)
    changes = [
        (type_, _given(change.inbox_value()), _given(change.live), _given(change.push))
        for type_ in NOTIFICATION_TYPES
        if isinstance(change := getattr(body, type_), ChannelsChange)
    ]
    async with request.app[POOL].acquire() as conn, conn.transaction():
        for type_, inbox, live, push in changes:
            await conn.execute(
                "INSERT INTO notification_preferences (user_id, type, in_app, live, push)"
                " VALUES ($1, $2, coalesce($3, true), coalesce($4, true), coalesce($5, true))"
                " ON CONFLICT (user_id, type) DO UPDATE SET"
                " in_app = coalesce($3, notification_preferences.in_app),"
                " live = coalesce($4, notification_preferences.live),"
                " push = coalesce($5, notification_preferences.push), updated_at = now()",
                user.user_id,
                type_,
                inbox,
                live,
                push,
            )
    return ok(await _preferences(request, user.user_id))


def _given(value: bool | UnsetType) -> bool | None:
    """A channel's new setting, None when not sent (the stored one stays)."""
    return None if value is UNSET else bool(value)
