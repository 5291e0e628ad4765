"""The peer of the chat benchmark: the two-party chat server a competent developer writes with the
usual stack. python-socketio's `AsyncServer` on aiohttp with `AsyncRedisManager` (processes share
one Redis channel), asyncpg (a pool of 10 per process), pyjwt.

- connect: the JWT in the Socket.IO `auth` payload (`{"token": ...}`) is verified (HS256, the
  secret in JWT_SECRET); the user id is kept in the Socket.IO session. A bad token refuses the
  connection.
- `join {orderId}`: participant check (`SELECT client_id, doer_id FROM orders`), then the order is
  added to the session's joined orders and the socket enters the room named by the order id. Ack
  `{orderId}` or `{error}`.
- `message {orderId, text, clientMsgId}` (only for a joined order): in one transaction, the order's
  next seq from `peer_sequences` (upsert: the row lock serializes concurrent senders, so seq is
  gapless) and the INSERT into `peer_messages`; a clientMsgId this sender already stored in this
  order rolls the transaction back (giving its seq back) and answers the stored message. The stored
  message is emitted to the order's room (the sender's socket skipped), then acked
  `{id, seq, createdAt, clientMsgId}`.

    PEER_DSN=... REDIS_URL=... PEER_CHANNEL=... JWT_SECRET=... python -m bench.chatmix.peer --port 9001
"""

from __future__ import annotations

import argparse
import os
import resource
import uuid
from typing import Any

import asyncpg
import jwt
import socketio
from aiohttp import web

# The peer's own tables in the scratch database (created by bench/chatmix/run.py): the same
# constraints as gigwire's messages, without attachments and the unread-count index.
SCHEMA = """
CREATE TABLE IF NOT EXISTS peer_sequences (
    order_id  uuid PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
    last_seq  bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS peer_messages (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id       uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    seq            bigint NOT NULL,
    sender_id      uuid NOT NULL REFERENCES users (id),
    text           text NOT NULL,
    client_msg_id  text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, seq),
    UNIQUE (order_id, sender_id, client_msg_id)
);
"""

_NEXT_SEQ = """
INSERT INTO peer_sequences (order_id, last_seq) VALUES ($1, 1)
ON CONFLICT (order_id) DO UPDATE SET last_seq = peer_sequences.last_seq + 1
RETURNING last_seq
"""
_INSERT = """
INSERT INTO peer_messages (order_id, seq, sender_id, text, client_msg_id) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (order_id, sender_id, client_msg_id) DO NOTHING
RETURNING id, seq, text, client_msg_id, created_at
"""
_STORED = """
SELECT id, seq, text, client_msg_id, created_at FROM peer_messages
WHERE order_id = $1 AND sender_id = $2 AND client_msg_id = $3
"""


class _Duplicate(Exception):
    """Raised inside the transaction to roll back the seq of a resent clientMsgId."""


def _valid_uuid(value: Any) -> bool:
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return False
    return True


def build(dsn: str, redis_url: str, channel: str, secret: str) -> web.Application:
    """The aiohttp app with the Socket.IO server at /socket.io/ and /healthz."""
    manager = socketio.AsyncRedisManager(redis_url, channel=channel)
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager, cors_allowed_origins="*")
    app = web.Application()
    pools: list[asyncpg.Pool] = []

    async def open_pool(_app: web.Application) -> None:
        pools.append(await asyncpg.create_pool(dsn, min_size=10, max_size=10))

    async def close_pool(_app: web.Application) -> None:
        for pool in pools:
            await pool.close()

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            claims = jwt.decode(
                token or "", secret, algorithms=["HS256"], options={"require": ["sub", "exp"]}
            )
        except jwt.PyJWTError:
            raise socketio.exceptions.ConnectionRefusedError("unauthorized") from None
        await sio.save_session(sid, {"user": claims["sub"], "orders": set()})

    async def join(sid: str, data: Any) -> dict[str, Any]:
        order_id = data.get("orderId") if isinstance(data, dict) else None
        if not _valid_uuid(order_id):
            return {"error": "bad_request"}
        async with sio.session(sid) as session:
            row = await pools[0].fetchrow(
                "SELECT client_id::text, doer_id::text FROM orders WHERE id = $1", order_id
            )
            if row is None:
                return {"error": "not_found"}
            if session["user"] not in (row[0], row[1]):
                return {"error": "forbidden"}
            session["orders"].add(order_id)
        await sio.enter_room(sid, order_id)
        return {"orderId": order_id}

    async def message(sid: str, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            return {"error": "bad_request"}
        order_id, text, client_msg_id = data.get("orderId"), data.get("text"), data.get("clientMsgId")
        session = await sio.get_session(sid)
        # Joining checked the participant: only a joined socket may post to the order. The joined
        # orders are kept in the session because `sio.rooms(sid)` scans every room of the
        # namespace (one per socket plus one per order): at 2,500 sockets a process, a first
        # version of this peer spent its CPU there and stored almost nothing.
        if not isinstance(order_id, str) or order_id not in session["orders"]:
            return {"error": "forbidden"}
        if not isinstance(text, str) or not text.strip() or len(text) > 4000:
            return {"error": "bad_request"}
        if client_msg_id is not None and (
            not isinstance(client_msg_id, str) or not 0 < len(client_msg_id) <= 64
        ):
            return {"error": "bad_request"}
        user = session["user"]
        pool = pools[0]
        new = True
        try:
            async with pool.acquire() as conn, conn.transaction():
                seq = await conn.fetchval(_NEXT_SEQ, order_id)
                row = await conn.fetchrow(_INSERT, order_id, seq, user, text, client_msg_id)
                if row is None:
                    raise _Duplicate
        except _Duplicate:
            new = False
            row = await pool.fetchrow(_STORED, order_id, user, client_msg_id)
        assert row is not None
        ack = {
            "id": str(row["id"]),
            "seq": row["seq"],
            "createdAt": int(row["created_at"].timestamp() * 1000),
            "clientMsgId": row["client_msg_id"],
        }
        if new:  # a resend was delivered when first stored
            out = {**ack, "orderId": order_id, "senderId": user, "text": row["text"]}
            await sio.emit("message", out, room=order_id, skip_sid=sid)
        return ack

    sio.on("connect", connect)  # what the `@sio.event` decorator does
    sio.on("join", join)
    sio.on("message", message)
    sio.attach(app)
    app.on_startup.append(open_pool)
    app.on_cleanup.append(close_pool)
    app.router.add_get("/healthz", _ok)
    return app


async def _ok(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    env = os.environ
    app = build(env["PEER_DSN"], env["REDIS_URL"], env["PEER_CHANNEL"], env["JWT_SECRET"])
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
