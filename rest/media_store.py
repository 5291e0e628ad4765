"""The web process's media store and what every media route shares: the `Media` shape, the links
it carries, who may read a media."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from aiohttp import web

from domain.media import PUBLIC_KINDS, Kind
from hub.keys import SETTINGS
from hub.model import EpochMs, Uuid
from hub.storage import Storage
from hub.storages import open_storage
from hub.tokens import Claims
from rest.api import Wire, load

PROCESSING_AT_ONCE = 2
"""Images decoded at once per process: a large picture takes a few hundred MB while decoding."""


@dataclass
class MediaState:
    """The media store and the bound on concurrent image processing."""

    storage: Storage
    processing: asyncio.Semaphore


MEDIA: web.AppKey[MediaState] = web.AppKey("media", MediaState)


def setup_app(app: web.Application) -> None:
    """Open the media store when the app starts and close it when it stops."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        state = MediaState(open_storage(app[SETTINGS]), asyncio.Semaphore(PROCESSING_AT_ONCE))
        app[MEDIA] = state
        yield
        await state.storage.close()

    app.cleanup_ctx.append(context)


class Media(Wire):
    """An uploaded file. `url` is a link anyone holding it may download the file with until
    `urlExpiresAt` (MEDIA_URL_TTL); ask GET /api/media/{id} for a fresh one."""

    id: Uuid
    kind: Annotated[Kind, msgspec.Meta(description="what the file is for; fixed at upload")]
    content_type: Annotated[str, msgspec.Meta(description="sniffed from the bytes, not the client's")]
    size: Annotated[int, msgspec.Meta(ge=0, description="bytes stored (images: after re-encoding)")]
    width: Annotated[int, msgspec.Meta(ge=1, description="pixels (images; null for a PDF)")] | None
    height: Annotated[int, msgspec.Meta(ge=1, description="pixels (images; null for a PDF)")] | None
    url: Annotated[str, msgspec.Meta(description="signed, expiring download link")]
    url_expires_at: EpochMs
    created_at: EpochMs


MEDIA_COLUMNS = "id, owner_id, kind, content_type, size, width, height, order_id, created_at"


def base_url(request: web.Request) -> str:
    """The origin gigwire's own links start with: PUBLIC_URL, else the request's own."""
    configured = request.app[SETTINGS].public_url
    return configured or f"{request.scheme}://{request.host}"


async def link(
    request: web.Request, media_id: str, content_type: str, ttl_s: int | None = None
) -> tuple[str, int]:
    """A signed link to the media's bytes and its expiry (epoch seconds)."""
    ttl = ttl_s if ttl_s is not None else request.app[SETTINGS].media_url_ttl_s
    expires = int(time.time()) + ttl
    url = await request.app[MEDIA].storage.signed_url(
        media_id, expires, base_url=base_url(request), content_type=content_type
    )
    return url, expires


async def media_answer(request: web.Request, row: Any) -> Media:
    """The Media of a row, with a fresh link."""
    url, expires = await link(request, str(row["id"]), row["content_type"])
    return load(Media, row, url=url, urlExpiresAt=expires * 1000)


async def may_read(request: web.Request, row: Any, claims: Claims | None) -> bool:
    """Public kinds: anyone. Otherwise the owner; for a chat attachment also the two users of the
    chat it was sent in (an order's, or an application's pre-order thread: hub/threads.py); for an
    ID document also admins."""
    if row["kind"] in PUBLIC_KINDS:
        return True
    if claims is None:
        return False
    if claims.user_id == str(row["owner_id"]):
        return True
    if row["kind"] == "id_document":
        return "admin" in claims.roles
    if row["kind"] == "chat_attachment" and row["order_id"] is not None:
        from hub.keys import POOL
        from hub.threads import people

        pair = await people(request.app[POOL], str(row["order_id"]))
        return pair is not None and claims.user_id in pair
    return False
