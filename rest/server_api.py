"""The server API for other backends (/api/server/*), authenticated by API keys (rest/api_keys.py):
publish to a user's or an order's feed, disconnect a user, a user's presence, the deployment's stats.

**Publish** (scope `publish`) tells users something through the same durable path as every other
feed event: a NOTIFICATION `{id, type, title, body, data, createdAt, feedSeq}` written with its inbox
row, its feed entry (the user's next feedSeq) and its outbox row in one transaction, then published by
the relay to every session of the user on every node. A client that was offline gets it by resuming
with `sinceFeedSeq` (or GET /api/feed). `userId` addresses one user; `orderId` addresses both parties
of the order, each in their own feed, with `data.orderId` set. Whether each channel (inbox, live,
push) is used follows the user's preferences for the notification's `type`, as for gigwire's own
notifications; a push is queued only when `push` is true. It does not enter the order's chat
history: chat messages are the parties' own.

**Disconnect** (scope `disconnect`) closes every session of the user on every node and transport:
the control event SESSION_REVOKED {userId, reason: server_disconnect} through the outbox, handled by
hub/revoke.py (ERROR unauthorized, close 4401). The user's tokens stay valid: a client may reconnect
(its SDK refreshes and reconnects by itself); to keep someone out, delete or ban the account."""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

import asyncpg
import msgspec
import orjson
from aiohttp import web

from domain.notify import BODY_MAX, TITLE_MAX, notify
from hub.events import SessionRevoked, to_wire
from hub.keys import POOL
from hub.model import Uuid
from hub.outbox import enqueue
from rest.api import Body, FieldErrors, Routes, Wire, ok, read_body
from rest.api_keys import SECURITY, require_key
from rest.errors import ApiError

routes = Routes("server")

DATA_MAX_BYTES = 4096
DISCONNECT_REASON = "server_disconnect"
_KEY_ERRORS = (400, 401, 403, 404)


class PublishBody(Body):
    """A notification for one user (`userId`) or both parties of an order (`orderId`): exactly one."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=TITLE_MAX)]
    user_id: Uuid | None = None
    order_id: Uuid | None = None
    type: Annotated[
        str, msgspec.Meta(pattern="^[a-z_]{2,40}$", description="Notification type (default system).")
    ] = "system"
    body: Annotated[str, msgspec.Meta(max_length=BODY_MAX)] = ""
    data: Annotated[
        dict[str, Any], msgspec.Meta(description=f"Free-form, at most {DATA_MAX_BYTES} bytes as JSON.")
    ] = msgspec.field(default_factory=dict)
    push: Annotated[bool, msgspec.Meta(description="Also push to the users' devices.")] = False

    def __post_init__(self) -> None:
        if (self.user_id is None) == (self.order_id is None):
            raise FieldErrors({"userId": "give exactly one of userId and orderId"})
        if len(orjson.dumps(self.data)) > DATA_MAX_BYTES:
            raise FieldErrors({"data": f"must be at most {DATA_MAX_BYTES} bytes as JSON"})


class Delivery(Wire):
    """One user's notification."""

    user_id: str
    notification_id: str


class Published(Wire):
    """What was published: one notification per addressed user, each in that user's feed."""

    target: Literal["user", "order"]
    deliveries: list[Delivery]


class DisconnectBody(Body):
    """The user whose sessions to close."""

    user_id: Uuid


class Disconnected(Wire):
    """The disconnect is committed; every node closes the user's sessions within a second."""

    user_id: str
    reason: str


def _uuid_or_404(value: str, what: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ApiError("not_found", f"No such {what}: {value!r}.") from None


@routes.post(
    "/api/server/publish",
    summary="Server API: publish a notification to a user's or an order's feed (scope publish)",
    description=__doc__.split("\n\n")[1] if __doc__ else "",
    body=PublishBody,
    parse=False,
    response=Published,
    errors=_KEY_ERRORS,
    security=SECURITY,
)
async def publish(request: web.Request) -> web.Response:
    """Commit one NOTIFICATION per addressed user (inbox, feed, outbox) and answer their ids."""
    await require_key(request, "publish")
    body = await read_body(request, PublishBody)
    pool = request.app[POOL]
    data = dict(body.data)
    async with pool.acquire() as conn, conn.transaction():
        if body.user_id is not None:
            user_id = _uuid_or_404(body.user_id, "user")
            if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", user_id):
                raise ApiError("not_found", f"No such user: {user_id}.")
            users = [user_id]
            target: Literal["user", "order"] = "user"
        else:
            assert body.order_id is not None
            order_id = _uuid_or_404(body.order_id, "order")
            row = await conn.fetchrow(
                "SELECT client_id::text, doer_id::text FROM orders WHERE id = $1", order_id
            )
            if row is None:
                raise ApiError("not_found", f"No such order: {order_id}.")
            # ascending: each notify takes that user's feed row lock (hub/feed.py); one order for all
            users = sorted({row["client_id"], row["doer_id"]})
            data["orderId"] = order_id
            target = "order"
        deliveries = [
            Delivery(
                user_id=user,
                notification_id=await notify(
                    conn, user, body.type, body.title, body.body, data, push=body.push
                ),
            )
            for user in users
        ]
    return ok(Published(target=target, deliveries=deliveries))


@routes.post(
    "/api/server/disconnect",
    summary="Server API: close every session of a user on every node (scope disconnect)",
    description=__doc__.split("\n\n")[2] if __doc__ else "",
    body=DisconnectBody,
    parse=False,
    response=Disconnected,
    errors=_KEY_ERRORS,
    security=SECURITY,
)
async def disconnect(request: web.Request) -> web.Response:
    """Commit SESSION_REVOKED {userId, reason: server_disconnect} to the outbox."""
    await require_key(request, "disconnect")
    body = await read_body(request, DisconnectBody)
    user_id = _uuid_or_404(body.user_id, "user")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", user_id):
            raise ApiError("not_found", f"No such user: {user_id}.")
        event = SessionRevoked(user_id=user_id, reason=DISCONNECT_REASON)
        await enqueue(cast(asyncpg.Connection, conn), "SESSION_REVOKED", to_wire(event), user_ids=[user_id])
    return ok(Disconnected(user_id=user_id, reason=DISCONNECT_REASON))
