"""Attachments that name uploaded media (`mediaId`) rather than a URL: checked against the media
table before a chat message or a gig is stored. A media may be attached only by its owner and only
as its own kind (chat_attachment in chat, gig_attachment on gigs); a chat attachment is bound to the
order it is first sent in (both parties may then read it) and cannot be sent in another one.

Everything about the media an attachment carries (its type and size) comes from the media row, not
from the sender. Unknown, foreign, deleted and wrong-kind ids are one refusal, so a caller learns
nothing about other users' media."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SEND_HOW = "upload it with POST /api/media (kind {kind}) and send the id you get"


class MediaRefError(Exception):
    """An attachment names a media the sender may not attach here; `index` is its place in the list."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


@dataclass(frozen=True)
class MediaFacts:
    """What an attachment of a media tells: its sniffed type and stored size."""

    content_type: str
    size: int


def _refusal(index: int, kind: str, where: str) -> MediaRefError:
    return MediaRefError(
        index,
        f"attachments[{index}].mediaId is not a {kind} of yours{where}; " + SEND_HOW.format(kind=kind) + ".",
    )


async def resolve(
    db: Any, owner_id: str, kind: str, media_ids: list[str | None], order_id: str | None = None
) -> dict[str, MediaFacts]:
    """media id -> its facts, for the ids of a list of attachments (canonical UUID text, None for an
    attachment that is a URL) that must all be media of `owner_id` of `kind`; MediaRefError naming
    the first that is not. With `order_id` (chat), each is bound to that order, or must already be.
    `db` is a pool or connection."""
    wanted = sorted({m for m in media_ids if m is not None})
    if not wanted:
        return {}
    if order_id is None:
        rows = await db.fetch(
            "SELECT id::text, content_type, size FROM media"
            " WHERE id = ANY($1::uuid[]) AND owner_id = $2 AND kind = $3",
            wanted,
            owner_id,
            kind,
        )
    else:
        rows = await db.fetch(
            "UPDATE media SET order_id = $4 WHERE id = ANY($1::uuid[]) AND owner_id = $2 AND kind = $3"
            " AND (order_id IS NULL OR order_id = $4) RETURNING id::text, content_type, size",
            wanted,
            owner_id,
            kind,
            order_id,
        )
    found = {row["id"]: MediaFacts(row["content_type"], row["size"]) for row in rows}
    for index, media_id in enumerate(media_ids):
        if media_id is not None and media_id not in found:
            where = " (or it was sent in another order)" if order_id is not None else ""
            raise _refusal(index, kind, where)
    return found
