"""/api/notifications: the caller's inbox (cursor paging, unread count, read marks, deletion) and
their preferences per notification type and channel (in-app, push). Notifications are created by
`domain.notify.notify` in the transaction of whatever they tell about."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from typing import Any

from aiohttp import web

from domain.notify import NOTIFICATION_TYPES
from hub.clock import epoch_ms
from hub.keys import POOL
from rest.errors import ApiError
from rest.http import ok, path_uuid, query_int, read_json, require_user
from rest.openapi import ERROR_REF, deleted_item

routes = web.RouteTableDef()

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def notification_json(row: Any) -> dict[str, Any]:
    """A notifications row as the API shows it (times in epoch ms)."""
    return {
        "id": str(row["id"]),
        "type": row["type"],
        "title": row["title"],
        "body": row["body"],
        "data": row["data"],
        "read": row["read_at"] is not None,
        "readAt": epoch_ms(row["read_at"]),
        "createdAt": epoch_ms(row["created_at"]),
    }


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


@routes.get("/api/notifications")
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
            f"SELECT * FROM notifications WHERE {where} ORDER BY created_at DESC, id DESC LIMIT $2", *args
        )
        unread_count = await conn.fetchval(
            "SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL", user.user_id
        )
    page = rows[:limit]
    next_cursor = _cursor(page[-1]) if len(rows) > limit else None
    return ok([notification_json(r) for r in page], nextCursor=next_cursor, unreadCount=unread_count)


@routes.get("/api/notifications/unread-count")
async def unread_count(request: web.Request) -> web.Response:
    """How many of the caller's notifications are unread."""
    user = require_user(request)
    count = await request.app[POOL].fetchval(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL", user.user_id
    )
    return ok({"count": count})


@routes.post("/api/notifications/mark-all-read")
async def mark_all_read(request: web.Request) -> web.Response:
    """Mark every unread notification of the caller read; returns how many changed."""
    user = require_user(request)
    status = await request.app[POOL].execute(
        "UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL", user.user_id
    )
    return ok({"updated": int(status.split()[-1])})


@routes.delete("/api/notifications/clear-all")
async def clear_all(request: web.Request) -> web.Response:
    """Delete every notification of the caller; returns how many went."""
    user = require_user(request)
    status = await request.app[POOL].execute("DELETE FROM notifications WHERE user_id = $1", user.user_id)
    return ok({"deleted": int(status.split()[-1])})


@routes.post("/api/notifications/{id}/read")
async def mark_read(request: web.Request) -> web.Response:
    """Mark one of the caller's notifications read (again is fine); 404 when not theirs."""
    user = require_user(request)
    ident = path_uuid(request)
    row = await request.app[POOL].fetchrow(
        "UPDATE notifications SET read_at = coalesce(read_at, now()) WHERE id = $1 AND user_id = $2"
        " RETURNING *",
        ident,
        user.user_id,
    )
    if row is None:
        raise ApiError("not_found", f"No notification {ident} of yours.")
    return ok(notification_json(row))


@routes.delete("/api/notifications/{id}")
async def delete_one(request: web.Request) -> web.Response:
    """Delete one of the caller's notifications; 404 when not theirs (or already gone)."""
    user = require_user(request)
    ident = path_uuid(request)
    status = await request.app[POOL].execute(
        "DELETE FROM notifications WHERE id = $1 AND user_id = $2", ident, user.user_id
    )
    if status.endswith(" 0"):
        raise ApiError("not_found", f"No notification {ident} of yours.")
    return ok({"id": ident, "deleted": True})


async def _preferences(request: web.Request, user_id: str) -> dict[str, dict[str, bool]]:
    rows = await request.app[POOL].fetch(
        "SELECT type, in_app, push FROM notification_preferences WHERE user_id = $1", user_id
    )
    stored = {r["type"]: r for r in rows}
    return {
        t: {
            "inApp": bool(stored[t]["in_app"]) if t in stored else True,
            "push": bool(stored[t]["push"]) if t in stored else True,
        }
        for t in NOTIFICATION_TYPES
    }


@routes.get("/api/notifications/preferences")
async def get_preferences(request: web.Request) -> web.Response:
    """Per notification type, whether it goes to the in-app inbox and to push (both on by default)."""
    user = require_user(request)
    return ok(await _preferences(request, user.user_id))


@routes.put("/api/notifications/preferences")
async def put_preferences(request: web.Request) -> web.Response:
    """Change some preferences: {type: {inApp?, push?}}; types and channels not sent stay as they are."""
    user = require_user(request)
    body = await read_json(request)
    problems: dict[str, str] = {}
    changes: list[tuple[str, bool | None, bool | None]] = []
    for type_, value in body.items():
        if type_ not in NOTIFICATION_TYPES:
            problems[type_] = f"is not a notification type (one of {', '.join(NOTIFICATION_TYPES)})"
        elif not isinstance(value, dict) or not value or set(value) - {"inApp", "push"}:
            problems[type_] = "must be an object with inApp and/or push"
        elif any(not isinstance(v, bool) for v in value.values()):
            problems[type_] = "inApp and push must be true or false"
        else:
            changes.append((type_, value.get("inApp"), value.get("push")))
    if problems or not changes:
        raise ApiError(
            "bad_request",
            "Send {type: {inApp?: bool, push?: bool}} for one or more notification types.",
            details={"fields": problems or {"body": "names no notification type"}},
        )
    async with request.app[POOL].acquire() as conn, conn.transaction():
        for type_, in_app, push in changes:
            await conn.execute(
                "INSERT INTO notification_preferences (user_id, type, in_app, push)"
                " VALUES ($1, $2, coalesce($3, true), coalesce($4, true))"
                " ON CONFLICT (user_id, type) DO UPDATE SET"
                " in_app = coalesce($3, notification_preferences.in_app),"
                " push = coalesce($4, notification_preferences.push), updated_at = now()",
                user.user_id,
                type_,
                in_app,
                push,
            )
    return ok(await _preferences(request, user.user_id))


_NOTIFICATION: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type", "title", "body", "data", "read", "readAt", "createdAt"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "type": {"type": "string"},
        "title": {"type": "string"},
        "body": {"type": "string"},
        "data": {"type": "object"},
        "read": {"type": "boolean"},
        "readAt": {"type": ["integer", "null"], "description": "epoch ms"},
        "createdAt": {"type": "integer", "description": "epoch ms"},
    },
}
_CHANNELS: dict[str, Any] = {
    "type": "object",
    "required": ["inApp", "push"],
    "properties": {"inApp": {"type": "boolean"}, "push": {"type": "boolean"}},
}
_PREFERENCES: dict[str, Any] = {
    "type": "object",
    "required": list(NOTIFICATION_TYPES),
    "properties": dict.fromkeys(NOTIFICATION_TYPES, _CHANNELS),
}
_CHANGE: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {"inApp": {"type": "boolean"}, "push": {"type": "boolean"}},
}
_PREFERENCES_BODY: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": dict.fromkeys(NOTIFICATION_TYPES, _CHANGE),
}
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "notification id",
}


def _op(
    summary: str,
    data: dict[str, Any],
    errors: dict[str, str],
    *,
    meta: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An authenticated operation of the notifications tag: 200 envelope plus each error envelope."""
    envelope = {
        "type": "object",
        "required": ["success", "data", *(meta or {})],
        "properties": {"success": {"const": True}, "data": data, **(meta or {})},
    }
    responses: dict[str, Any] = {
        "200": {"description": "Done.", "content": {"application/json": {"schema": envelope}}}
    }
    all_errors = {
        "401": "No valid access token.",
        "429": "Over the rate limit; retry after Retry-After.",
        **errors,
    }
    for status, when in sorted(all_errors.items()):
        responses[status] = {"description": when, "content": {"application/json": {"schema": ERROR_REF}}}
    op: dict[str, Any] = {
        "summary": summary,
        "tags": ["notifications"],
        "security": [{"bearerAuth": []}],
        "responses": responses,
    }
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


OPENAPI: dict[str, dict[str, dict[str, Any]]] = {
    "/api/notifications": {
        "get": _op(
            "The caller's notifications, newest first",
            {"type": "array", "items": _NOTIFICATION},
            {"400": "A bad limit, unread or cursor parameter."},
            meta={
                "nextCursor": {"type": ["string", "null"], "description": "pass as cursor for the next page"},
                "unreadCount": {"type": "integer", "minimum": 0},
            },
            parameters=[
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                {"name": "unread", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}},
            ],
        )
    },
    "/api/notifications/unread-count": {
        "get": _op(
            "How many notifications are unread",
            {
                "type": "object",
                "required": ["count"],
                "properties": {"count": {"type": "integer", "minimum": 0}},
            },
            {},
        )
    },
    "/api/notifications/mark-all-read": {
        "post": _op(
            "Mark every notification read",
            {"type": "object", "required": ["updated"], "properties": {"updated": {"type": "integer"}}},
            {},
        )
    },
    "/api/notifications/clear-all": {
        "delete": _op(
            "Delete every notification",
            {"type": "object", "required": ["deleted"], "properties": {"deleted": {"type": "integer"}}},
            {},
        )
    },
    "/api/notifications/{id}/read": {
        "post": _op(
            "Mark one notification read",
            _NOTIFICATION,
            {"404": "No such notification of the caller's."},
            parameters=[_ID],
        )
    },
    "/api/notifications/{id}": {
        "delete": _op(
            "Delete one notification",
            deleted_item(key_schema={"type": "string", "format": "uuid"}),
            {"404": "No such notification of the caller's."},
            parameters=[_ID],
        )
    },
    "/api/notifications/preferences": {
        "get": _op("Notification preferences per type and channel", _PREFERENCES, {}),
        "put": _op(
            "Change notification preferences",
            _PREFERENCES,
            {"400": "An unknown type or channel, a non-boolean value, or nothing to change."},
            body=_PREFERENCES_BODY,
        ),
    },
}
