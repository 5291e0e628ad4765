"""/api/feed: the caller's durable feed over REST (hub/feed.py), the same events a realtime session
gets, in feedSeq order: page with `sinceSeq` (the last seq seen) until an answer's last item is
`lastSeq`. When entries after `sinceSeq` are no longer kept (FEED_RETENTION) or `sinceSeq` is ahead
of the feed, the answer is `expired` with no items: refetch state, then continue from `lastSeq`."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web

from hub import feed
from hub.keys import POOL
from hub.model import EpochMs
from rest.api import Routes, Wire, ok
from rest.http import query_int, require_user

routes = Routes("feed")

MAX_LIMIT = 200
Seq = Annotated[int, msgspec.Meta(ge=0)]


class FeedItem(Wire):
    """One event of the feed: its type and data exactly as the realtime event (data has feedSeq)."""

    seq: Annotated[int, msgspec.Meta(ge=1, description="The event's feedSeq.")]
    type: Annotated[str, msgspec.Meta(description="ORDER_UPDATE, NEW_APPLICATION or NOTIFICATION.")]
    data: dict[str, Any]
    created_at: EpochMs


class FeedPage(Wire):
    """Feed events after sinceSeq, oldest first."""

    items: list[FeedItem]
    last_seq: Annotated[Seq, msgspec.Meta(description="The caller's last feedSeq when read.")]
    expired: Annotated[bool, msgspec.Meta(description="Events after sinceSeq are no longer kept.")]


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


@routes.get(
    "/api/feed",
    summary="The caller's feed events after sinceSeq, in feedSeq order",
    auth=True,
    response=FeedPage,
    parameters=(
        _query(
            "sinceSeq",
            {"type": "integer", "minimum": 0, "maximum": 2**53},
            "the last feedSeq seen (default 0)",
        ),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "default 50"),
    ),
    errors=(400,),
)
async def get_feed(request: web.Request) -> web.Response:
    """Up to `limit` feed events after `sinceSeq`, oldest first, with the caller's last feedSeq."""
    user = require_user(request)
    since = query_int(request, "sinceSeq", 0, 0, 2**53)
    limit = query_int(request, "limit", 50, 1, MAX_LIMIT)
    pool = request.app[POOL]
    # The last seq first: every entry up to it is committed, so the page below has no hole.
    last = await feed.last_seq(pool, user.user_id)
    if since > last or not await feed.resumable(pool, user.user_id, since, last):
        return ok(FeedPage(items=[], last_seq=last, expired=True))
    rows = await feed.entries_after(pool, user.user_id, since, last, limit)
    items = [
        FeedItem(
            seq=int(r["seq"]),
            type=r["type"],
            data={**r["data"], "feedSeq": int(r["seq"])},
            created_at=int(r["created_at"].timestamp() * 1000),
        )
        for r in rows
    ]
    return ok(FeedPage(items=items, last_seq=last, expired=False))
