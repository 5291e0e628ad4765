"""/api/devices: the phones and browsers a user receives pushes on (FCM registration tokens).

A user has any number of devices. Registering a token again updates it; registering a token that
belongs to someone else moves it to the caller (the phone changed accounts), so a push never
reaches the previous owner. The push sender deletes tokens FCM reports dead."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web

from hub.keys import POOL
from hub.model import EpochMs
from rest.api import Body, Routes, Wire, load, ok
from rest.errors import ApiError
from rest.http import require_user

routes = Routes("devices")

Platform = Literal["android", "ios", "web"]


class DeviceInput(Body):
    """POST /api/devices."""

    # FCM tokens are printable ASCII without spaces (about 150-250 characters today).
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=4096, pattern=r"^[\x21-\x7e]+$")]
    platform: Platform


class Device(Wire):
    """A push token of the caller's."""

    token: str
    platform: Platform
    created_at: EpochMs
    updated_at: EpochMs


class DeviceDeleted(Wire):
    """The answer of DELETE /api/devices/{token}."""

    token: str
    deleted: Literal[True]


_AS_OK = {
    "description": "the token was known: updated, and now the caller's",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["success", "data"],
                "properties": {"success": {"const": True}, "data": {"$ref": "#/components/schemas/Device"}},
            }
        }
    },
}


@routes.post(
    "/api/devices",
    summary="Register a push token for the caller",
    description="Upsert by token: 201 when new, 200 when known; a token registered by another user"
    " moves to the caller.",
    auth=True,
    body=DeviceInput,
    response=Device,
    status=201,
    responses={"200": _AS_OK},
)
async def register(request: web.Request, body: DeviceInput) -> web.Response:
    """Register (or refresh) a push token for the caller: 201 when new, 200 when it was already
    known (moved to the caller if it was someone else's)."""
    user = require_user(request)
    row = await request.app[POOL].fetchrow(
        "INSERT INTO devices (token, user_id, platform) VALUES ($1, $2, $3)"
        " ON CONFLICT (token) DO UPDATE SET user_id = EXCLUDED.user_id, platform = EXCLUDED.platform,"
        " updated_at = now() RETURNING *, (xmax = 0) AS inserted",
        body.token,
        user.user_id,
        body.platform,
    )
    assert row is not None  # an upsert always returns its row
    return ok(load(Device, row), status=201 if row["inserted"] else 200)


@routes.get("/api/devices", summary="The caller's devices", auth=True, response=list[Device])
async def list_devices(request: web.Request) -> web.Response:
    """The caller's devices, most recently registered first."""
    user = require_user(request)
    rows = await request.app[POOL].fetch(
        "SELECT * FROM devices WHERE user_id = $1 ORDER BY updated_at DESC", user.user_id
    )
    return ok([load(Device, r) for r in rows])


@routes.delete(
    "/api/devices/{token}",
    summary="Unregister one of the caller's push tokens",
    auth=True,
    response=DeviceDeleted,
    parameters=({"name": "token", "in": "path", "required": True, "schema": {"type": "string"}},),
    errors=(404,),
)
async def unregister(request: web.Request) -> web.Response:
    """Stop pushes to one of the caller's tokens (on log-out); 404 when it is not the caller's."""
    user = require_user(request)
    token = request.match_info["token"]  # aiohttp has already percent-decoded it
    status = await request.app[POOL].execute(
        "DELETE FROM devices WHERE token = $1 AND user_id = $2", token, user.user_id
    )
    if status.endswith(" 0"):
        raise ApiError("not_found", "No such device token of yours.")
    return ok(DeviceDeleted(token=token, deleted=True))
