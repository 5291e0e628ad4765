"""/api/devices: the phones and browsers a user receives pushes on (FCM registration tokens).

A user has any number of devices. Registering a token again updates it; registering a token that
belongs to someone else moves it to the caller (the phone changed accounts), so a push never
reaches the previous owner. The push sender deletes tokens FCM reports dead."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from hub.clock import epoch_ms
from hub.keys import POOL
from rest.errors import ApiError
from rest.http import Fields, ok, read_json, require_user
from rest.openapi import ERROR_REF, deleted_item

routes = web.RouteTableDef()

PLATFORMS = ("android", "ios", "web")
# FCM tokens are printable ASCII without spaces (about 150-250 characters today).
TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")


def device_json(row: Any) -> dict[str, Any]:
    """A devices row as the API shows it."""
    return {
        "token": row["token"],
        "platform": row["platform"],
        "createdAt": epoch_ms(row["created_at"]),
        "updatedAt": epoch_ms(row["updated_at"]),
    }


@routes.post("/api/devices")
async def register(request: web.Request) -> web.Response:
    """Register (or refresh) a push token for the caller: 201 when new, 200 when it was already
    known (moved to the caller if it was someone else's)."""
    user = require_user(request)
    fields = Fields(await read_json(request))
    token = fields.text("token", max_len=4096, pattern=TOKEN)
    platform = fields.text("platform", choices=PLATFORMS)
    fields.unknown(("token", "platform"))
    fields.check()
    row = await request.app[POOL].fetchrow(
        "INSERT INTO devices (token, user_id, platform) VALUES ($1, $2, $3)"
        " ON CONFLICT (token) DO UPDATE SET user_id = EXCLUDED.user_id, platform = EXCLUDED.platform,"
        " updated_at = now() RETURNING *, (xmax = 0) AS inserted",
        token,
        user.user_id,
        platform,
    )
    assert row is not None  # an upsert always returns its row
    return ok(device_json(row), status=201 if row["inserted"] else 200)


@routes.get("/api/devices")
async def list_devices(request: web.Request) -> web.Response:
    """The caller's devices, most recently registered first."""
    user = require_user(request)
    rows = await request.app[POOL].fetch(
        "SELECT * FROM devices WHERE user_id = $1 ORDER BY updated_at DESC", user.user_id
    )
    return ok([device_json(r) for r in rows])


@routes.delete("/api/devices/{token}")
async def unregister(request: web.Request) -> web.Response:
    """Stop pushes to one of the caller's tokens (on log-out); 404 when it is not the caller's."""
    user = require_user(request)
    token = request.match_info["token"]  # aiohttp has already percent-decoded it
    status = await request.app[POOL].execute(
        "DELETE FROM devices WHERE token = $1 AND user_id = $2", token, user.user_id
    )
    if status.endswith(" 0"):
        raise ApiError("not_found", "No such device token of yours.")
    return ok({"token": token, "deleted": True})


_DEVICE: dict[str, Any] = {
    "type": "object",
    "required": ["token", "platform", "createdAt", "updatedAt"],
    "properties": {
        "token": {"type": "string"},
        "platform": {"type": "string", "enum": list(PLATFORMS)},
        "createdAt": {"type": "integer", "description": "epoch ms"},
        "updatedAt": {"type": "integer", "description": "epoch ms"},
    },
}


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["success", "data"],
        "properties": {"success": {"const": True}, "data": data},
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_UNAUTHORIZED = _json(ERROR_REF, "No valid access token.")
_RATE = _json(ERROR_REF, "Over the rate limit; retry after Retry-After.")

OPENAPI: dict[str, dict[str, dict[str, Any]]] = {
    "/api/devices": {
        "post": {
            "summary": "Register a push token for the caller",
            "description": "Upsert by token: a token registered by another user moves to the caller.",
            "tags": ["devices"],
            "security": [{"bearerAuth": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["token", "platform"],
                            "additionalProperties": False,
                            "properties": {
                                "token": {"type": "string", "minLength": 1, "maxLength": 4096},
                                "platform": {"type": "string", "enum": list(PLATFORMS)},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json(_envelope(_DEVICE), "The token was known; updated (and now the caller's)."),
                "201": _json(_envelope(_DEVICE), "Registered."),
                "400": _json(ERROR_REF, "A missing or bad token or platform, or an unknown field."),
                "401": _UNAUTHORIZED,
                "429": _RATE,
            },
        },
        "get": {
            "summary": "The caller's devices",
            "tags": ["devices"],
            "security": [{"bearerAuth": []}],
            "responses": {
                "200": _json(_envelope({"type": "array", "items": _DEVICE}), "Done."),
                "401": _UNAUTHORIZED,
                "429": _RATE,
            },
        },
    },
    "/api/devices/{token}": {
        "delete": {
            "summary": "Unregister one of the caller's push tokens",
            "tags": ["devices"],
            "security": [{"bearerAuth": []}],
            "parameters": [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": _json(
                    _envelope(deleted_item("token")),
                    "Deleted.",
                ),
                "401": _UNAUTHORIZED,
                "404": _json(ERROR_REF, "No such token of the caller's."),
                "429": _RATE,
            },
        }
    },
}
