"""/api/media: uploading files (avatars, ID documents, gig and chat attachments), reading them back
through signed, expiring links, deleting them. What a file may be and what is kept of it is
domain/media.py; where the bytes live is hub/storage.py (MEDIA_STORAGE_URL).

Who may read a media (GET /api/media/{id}, which hands out a fresh link): anyone for avatars and gig
attachments; the owner and the parties of the order it was sent in for a chat attachment; the owner
and admins for an ID document. Anyone else gets 404, as if it did not exist."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid

import asyncpg
from aiohttp import web

from domain.media import PDF, PUBLIC_KINDS, process
from hub.keys import POOL, SETTINGS
from hub.media_sign import valid
from hub.storage import Storage, StorageError
from rest.api import Deleted, Routes, ok
from rest.errors import ApiError
from rest.http import bearer_claims, path_uuid, require_user
from rest.media_store import MEDIA, MEDIA_COLUMNS, Media, link, may_read, media_answer, setup_app
from rest.media_upload import UploadForm, read_upload

__all__ = ["routes", "setup_app"]

log = logging.getLogger("gigwire.media")
routes = Routes("media")

REDIRECT_TTL_S = 300
"""Lifetime of the store's own link gigwire redirects to (S3) for a public media."""
_DIGITS = re.compile(r"[0-9]{1,12}")
_SIG = re.compile(r"[A-Za-z0-9_-]{43}")


def _unavailable(exc: StorageError) -> ApiError:
    log.warning("media store failed", extra={"error": str(exc)})
    return ApiError(
        "unavailable", "The media store cannot be reached right now; try again shortly.",
        headers={"Retry-After": "5"},
    )  # fmt: skip


@routes.post(
    "/api/media",
    summary="Upload a file: an avatar, an ID document, a gig or a chat attachment",
    description="multipart/form-data with `kind` and `file`. The type is sniffed from the bytes (JPEG,"
    " PNG, WebP; PDF for every kind but avatar): anything else is 422 (details.reason unsupported_type)."
    " Images are re-encoded without metadata (EXIF, GPS, XMP, ICC) after being turned upright; one over"
    " MEDIA_MAX_PIXELS pixels is 422 (too_many_pixels), one that cannot be decoded 422 (unreadable)."
    " PDFs are kept as sent. Over the kind's size limit (MEDIA_MAX_BYTES_<KIND>): 413 with"
    " details.maxBytes. Attach the answer's id to a chat message or gig as {mediaId}, or make it your"
    " avatar (POST /api/users/me/avatar) or ID document (POST /api/users/me/id-document).",
    auth=True,
    body=UploadForm,
    parse=False,
    response=Media,
    status=201,
    errors=(413, 422, 503),
)
async def upload(request: web.Request) -> web.Response:
    """Store an upload of the caller's and answer it with a link."""
    claims = require_user(request)
    form = await read_upload(request)
    state = request.app[MEDIA]
    max_pixels = request.app[SETTINGS].media_max_pixels
    async with state.processing:
        kept = await asyncio.to_thread(process, form.kind, form.data, max_pixels)
    media_id = str(uuid.uuid4())
    try:
        await state.storage.put(media_id, kept.data, kept.content_type)
    except StorageError as exc:
        raise _unavailable(exc) from None
    try:
        row = await request.app[POOL].fetchrow(
            "INSERT INTO media (id, owner_id, kind, content_type, size, width, height, sha256)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {MEDIA_COLUMNS}",
            media_id,
            claims.user_id,
            form.kind,
            kept.content_type,
            len(kept.data),
            kept.width,
            kept.height,
            kept.sha256,
        )
    except BaseException:
        await _forget(state.storage, media_id)  # no row names these bytes: do not keep them
        raise
    try:
        return ok(await media_answer(request, row), status=201)
    except StorageError as exc:  # stored and recorded; only its link failed: GET /api/media/{id} later
        raise _unavailable(exc) from None


async def _forget(storage: Storage, media_id: str) -> None:
    try:
        await storage.delete(media_id)
    except StorageError as exc:
        log.warning("media bytes left in the store", extra={"media": media_id, "error": str(exc)})


async def _row(request: web.Request, media_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await request.app[POOL].fetchrow(
        f"SELECT {MEDIA_COLUMNS} FROM media WHERE id = $1", media_id
    )
    return row


def _not_found(media_id: str) -> ApiError:
    return ApiError("not_found", f"No media {media_id}.")


@routes.get(
    "/api/media/{id}",
    summary="A media, with a fresh signed link to its bytes",
    description="Avatars and gig attachments: anyone, token or not. A chat attachment: its owner and"
    " the parties of the order it was sent in. An ID document: its owner and admins. Anyone else: 404.",
    auth=None,
    response=Media,
    errors=(404, 503),
)
async def get_media(request: web.Request) -> web.Response:
    media_id = path_uuid(request)
    claims = bearer_claims(request)
    row = await _row(request, media_id)
    if row is None or not await may_read(request, row, claims):
        raise _not_found(media_id)
    try:
        return ok(await media_answer(request, row))
    except StorageError as exc:
        raise _unavailable(exc) from None


@routes.get(
    "/api/media/{id}/content",
    summary="The bytes of a media (the link Media.url holds)",
    description="With `expires` and `sig` (a signed link from Media.url): until `expires` (epoch"
    " seconds), for anyone holding the link; an expired or altered link is 403. Without them: only"
    " avatars and gig attachments (public; this is the stable link POST /api/users/me/avatar stores),"
    " others 404. With an S3 store the answer is a redirect (302) to the store's own short-lived link.",
    parameters=(
        # Strings, not integers: the pair is a signature, valid only as Media.url gives it.
        {
            "name": "expires",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
            "description": "epoch seconds the link is valid until (part of the signed link)",
        },
        {
            "name": "sig",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "the link's signature",
        },
    ),
    responses={
        "200": {"description": "the file", "content": {"*/*": {"schema": {"type": "string"}}}},
        "302": {"description": "a redirect to the store's own link (S3)"},
    },
    errors=(400, 403, 404, 503),
)
async def content(request: web.Request) -> web.StreamResponse:
    media_id = path_uuid(request)
    expires_raw, sig = request.query.get("expires"), request.query.get("sig")
    signed = expires_raw is not None or sig is not None
    if signed:
        # Checked before the media is looked up: a bad link says nothing of whether the media exists.
        if expires_raw is not None and not _DIGITS.fullmatch(expires_raw):
            raise ApiError(
                "bad_request", "Query parameter expires must be epoch seconds (digits).",
                details={"parameter": "expires"},
            )  # fmt: skip
        if not (expires_raw and sig and _SIG.fullmatch(sig)):
            raise ApiError("forbidden", "This link is not valid; ask GET /api/media/{id} for a new one.")
        if not valid(request.app[SETTINGS], media_id, int(expires_raw), sig, time.time()):
            raise ApiError(
                "forbidden", "This link has expired or is not valid; ask GET /api/media/{id} for a new one."
            )
    row = await _row(request, media_id)
    if row is None or not (signed or row["kind"] in PUBLIC_KINDS):
        raise _not_found(media_id)
    storage = request.app[MEDIA].storage
    try:
        if storage.direct:
            ttl = REDIRECT_TTL_S
            if signed:  # the store's link lives no longer than gigwire's
                ttl = max(1, min(ttl, int(expires_raw or 0) - int(time.time())))
            url, _ = await link(request, media_id, row["content_type"], ttl)
            raise web.HTTPFound(url)
        data = await storage.get(media_id)
    except StorageError as exc:
        raise _unavailable(exc) from None
    if data is None:
        raise _not_found(media_id)
    if signed:
        cache = f"private, max-age={max(0, int(expires_raw or 0) - int(time.time()))}"
    else:
        cache = "public, max-age=86400, immutable"  # a media's bytes never change
    disposition = f'attachment; filename="{media_id}.pdf"' if row["content_type"] == PDF else "inline"
    return web.Response(
        body=data,
        content_type=row["content_type"],
        headers={
            "Cache-Control": cache,
            "Content-Disposition": disposition,
            "X-Content-Type-Options": "nosniff",
            # Opened directly, the file runs nothing: no scripts, no requests, a unique origin.
            "Content-Security-Policy": "default-src 'none'; img-src 'self'; sandbox",
        },
    )


@routes.delete(
    "/api/media/{id}",
    summary="Delete one of the caller's media",
    description="Owner only (others who may read it: 403; anyone else: 404). The bytes go at once;"
    " messages and gigs that attached it keep its id, which then names nothing (404). A profile"
    " whose avatar or ID document it was loses that link.",
    auth=True,
    response=Deleted,
    errors=(403, 404),
)
async def delete_media(request: web.Request) -> web.Response:
    claims = require_user(request)
    media_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await conn.fetchrow(f"SELECT {MEDIA_COLUMNS} FROM media WHERE id = $1 FOR UPDATE", media_id)
        if row is None:
            raise _not_found(media_id)
        if str(row["owner_id"]) != claims.user_id:
            if await may_read(request, row, claims):
                raise ApiError("forbidden", "Only the owner of a media can delete it.")
            raise _not_found(media_id)
        await conn.execute("DELETE FROM media WHERE id = $1", media_id)
        link_of = f"%/api/media/{media_id}%"
        await conn.execute(
            "UPDATE users SET avatar_url = CASE WHEN avatar_url LIKE $2 THEN NULL ELSE avatar_url END,"
            " id_document_url = CASE WHEN id_document_url LIKE $2 THEN NULL ELSE id_document_url END"
            " WHERE id = $1 AND (avatar_url LIKE $2 OR id_document_url LIKE $2)",
            claims.user_id,
            link_of,
        )
    await _forget(request.app[MEDIA].storage, media_id)
    return ok(Deleted(media_id))
