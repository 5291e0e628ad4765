"""Making an uploaded media the caller's avatar or ID document.

- POST /api/users/me/avatar {mediaId}: an `avatar` of the caller's; `avatarUrl` becomes the media's
  stable public link (`<origin>/api/media/{id}/content`, no expiry: avatars are public).
  PATCH /api/users/me still takes any https `avatarUrl`.
- POST /api/users/me/id-document {mediaId}: an `id_document` of the caller's; `idDocumentUrl`
  becomes `<origin>/api/media/{id}`, which gives a download link only to the owner and admins (with
  their token), and `idVerified` is reset until an admin checks the new document."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from aiohttp import web

from hub.keys import POOL
from hub.media_sign import content_path
from rest.api import Body, FieldErrors, Routes, load, ok
from rest.errors import ApiError
from rest.http import require_user
from rest.media_store import base_url
from rest.users import USER_COLUMNS, User

routes = Routes("media")


class MediaChoice(Body):
    """The id of a media of the caller's (POST /api/media) of the kind the route needs."""

    media_id: Annotated[str, msgspec.Meta(max_length=64, extra_json_schema={"format": "uuid"})]

    def __post_init__(self) -> None:
        try:
            self.media_id = str(uuid.UUID(self.media_id))
        except ValueError:
            raise FieldErrors({"mediaId": "must be a UUID"}) from None


async def _set(request: web.Request, body: MediaChoice, kind: str, column: str, url: str) -> web.Response:
    claims = require_user(request)
    extra = ", id_verified = false" if column == "id_document_url" else ""
    async with request.app[POOL].acquire() as conn, conn.transaction():
        owned = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM media WHERE id = $1 AND owner_id = $2 AND kind = $3)",
            body.media_id,
            claims.user_id,
            kind,
        )
        if not owned:
            raise ApiError(
                "bad_request",
                f"mediaId is not a {kind} of yours; upload one with POST /api/media (kind {kind}).",
                details={"fields": {"mediaId": f"is not a {kind} of yours"}},
            )
        row = await conn.fetchrow(
            f"UPDATE users SET {column} = $2{extra}, last_active_at = now() WHERE id = $1"
            f" RETURNING {USER_COLUMNS}",
            claims.user_id,
            url,
        )
    if row is None:
        raise ApiError("unauthorized", "The user of this access token no longer exists; log in again.")
    return ok(load(User, row))


@routes.post(
    "/api/users/me/avatar",
    summary="Make an uploaded avatar the caller's profile picture",
    description="mediaId: an avatar of the caller's (POST /api/media, kind avatar); anything else is 400."
    " avatarUrl becomes the media's stable public link.",
    auth=True,
    body=MediaChoice,
    response=User,
)
async def set_avatar(request: web.Request, body: MediaChoice) -> web.Response:
    url = base_url(request) + content_path(body.media_id)
    return await _set(request, body, "avatar", "avatar_url", url)


@routes.post(
    "/api/users/me/id-document",
    summary="Submit an uploaded ID document for verification",
    description="mediaId: an id_document of the caller's (POST /api/media, kind id_document). idDocumentUrl"
    " becomes the media's API link (GET it with the owner's or an admin's token for a download link);"
    " idVerified is reset.",
    auth=True,
    body=MediaChoice,
    response=User,
)
async def set_id_document(request: web.Request, body: MediaChoice) -> web.Response:
    url = f"{base_url(request)}/api/media/{body.media_id}"
    return await _set(request, body, "id_document", "id_document_url", url)
