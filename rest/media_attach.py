"""Gig attachments as stored: a `mediaId` must name a gig_attachment of the gig's owner
(hub/media_refs.py), whose type and size then replace whatever the client said."""

from __future__ import annotations

from typing import Any

import msgspec

from hub import media_refs
from rest.api import bad_fields
from rest.gig_search import Attachment


async def gig_attachments(db: Any, owner_id: str, attachments: list[Attachment] | None) -> list[Any] | None:
    """The JSON to store for a gig's `attachments` (None: not given); 400 naming `attachments` when
    one names a media the owner may not attach."""
    if attachments is None:
        return None
    try:
        facts = await media_refs.resolve(db, owner_id, "gig_attachment", [a.media_id for a in attachments])
    except media_refs.MediaRefError as exc:
        raise bad_fields({"attachments": exc.message}) from None
    for a in attachments:
        if a.media_id is not None:
            a.mime, a.size = facts[a.media_id].content_type, facts[a.media_id].size
    return [msgspec.to_builtins(a) for a in attachments]
