"""The server API's read routes (API keys, rest/api_keys.py): a user's presence (scope `presence`)
and the deployment's figures (scope `stats`), both read from the shared Store, so any node answers
for every node: presence as hub/presence.py keeps it, nodes as their beacons describe them
(hub/nodes.py, refreshed every 5 s)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from hub.keys import POOL, STORE
from hub.nodes import NodeStats, read_all
from hub.presence import presence_key
from rest.api import Routes, Wire, ok
from rest.api_keys import SECURITY, require_key
from rest.errors import ApiError
from rest.http import path_uuid

routes = Routes("server")


class Presence(Wire):
    """Whether a user has a live realtime session on any node."""

    user_id: str
    online: bool
    sessions: Annotated[int, msgspec.Meta(ge=0, description="Live sessions on every node and transport.")]
    watching_orders: Annotated[
        list[str], msgspec.Meta(description="Orders whose chat a live session is subscribed to.")
    ]


class Stats(Wire):
    """The deployment now: live web processes, their connections, stored chat messages."""

    nodes: list[NodeStats]
    connections: Annotated[int, msgspec.Meta(description="Open realtime connections on every node.")]
    users_online: Annotated[int, msgspec.Meta(description="Sum over nodes of users with a session there.")]
    messages_stored: Annotated[int, msgspec.Meta(description="Chat messages ever stored (every order).")]
    chat_messages_in: Annotated[int, msgspec.Meta(description="CHAT_MESSAGE frames the live nodes received.")]


@routes.get(
    "/api/server/presence/{userId}",
    summary="Server API: whether a user is online, on any node (scope presence)",
    response=Presence,
    errors=(401, 403, 404),
    security=SECURITY,
)
async def presence(request: web.Request) -> web.Response:
    """The user's live sessions and watched orders (404 for no such user)."""
    await require_key(request, "presence")
    user_id = path_uuid(request, "userId")
    if not await request.app[POOL].fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", user_id):
        raise ApiError("not_found", f"No such user: {user_id}.")
    members = await request.app[STORE].members(presence_key(user_id))
    sessions = [m for m in members if "|" not in m]
    orders = sorted({m.partition("|")[2] for m in members if "|" in m})
    return ok(
        Presence(user_id=user_id, online=bool(sessions), sessions=len(sessions), watching_orders=orders)
    )


@routes.get(
    "/api/server/stats",
    summary="Server API: nodes, connections and messages of the deployment (scope stats)",
    response=Stats,
    errors=(401, 403),
    security=SECURITY,
)
async def stats(request: web.Request) -> web.Response:
    """Every live node's beacon, their sums, and the chat messages stored."""
    await require_key(request, "stats")
    nodes = await read_all(request.app[STORE])
    stored = await request.app[POOL].fetchval("SELECT coalesce(sum(last_seq), 0) FROM chat_sequences")
    return ok(
        Stats(
            nodes=nodes,
            connections=sum(n.connections for n in nodes),
            users_online=sum(n.users for n in nodes),
            messages_stored=int(stored),
            chat_messages_in=sum(n.chat_messages_in for n in nodes),
        )
    )
