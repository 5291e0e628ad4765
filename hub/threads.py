"""Chat threads before an order exists, and blocks between users.

A chat is named by its chat id (the wire's `orderId`): an order's id, or the id of an application
while no order exists, so that the applicant and the gig's owner can ask and answer before the gig is
awarded. The order opened from an application takes the application's id (domain.orders.open_order):
the thread continues as the order's chat with the same seqs, read marks and channel.

A block (table user_blocks, either direction) stops new pre-order messages and new applications
between two users; an order's chat keeps working, since money is at stake and the dispute process
reads it. Sending in a pre-order thread and applying take a shared advisory lock on the pair of users
and blocking takes it exclusively, so a message or an application is either committed before the
block or refused after it, never stored once the block is answered.

Pre-order threads are few and quiet next to order chats: their messages are stored one transaction
each (the lock, the checks and the insert together), while order chat messages keep their group
commit (hub/chat_writer.py) with no extra query."""

from __future__ import annotations

from typing import Final

import asyncpg

from hub import chat
from hub.chat import Outgoing, Participants
from hub.db import Conn
from hub.events import ChatMessage
from hub.protocol import HubError

PAIR_KEY: Final = "hashtextextended(least($1::text, $2::text) || greatest($1::text, $2::text), 7020)"
"""The advisory lock key of a pair of users ($1, $2), the same whatever their order."""

_BLOCKED: Final = (
    "SELECT EXISTS (SELECT 1 FROM user_blocks WHERE (blocker_id = $1 AND blocked_id = $2)"
    " OR (blocker_id = $2 AND blocked_id = $1))"
)

_PEOPLE: Final = """
SELECT client_id::text, doer_id::text, false AS pre_order FROM orders WHERE id = $1
UNION ALL
SELECT g.client_id::text, a.doer_id::text, true FROM applications a JOIN gigs g ON g.id = a.gig_id
 WHERE a.id = $1 AND NOT EXISTS (SELECT 1 FROM orders WHERE id = $1)
"""


async def people(pool: asyncpg.Pool, chat_id: str) -> Participants | None:
    """The two users of a chat: an order's client and doer, or else an application's gig owner
    (as client) and applicant (as doer) with `pre_order` set; None when the id names neither."""
    row = await pool.fetchrow(_PEOPLE, chat_id)
    return None if row is None else Participants(row[0], row[1], bool(row[2]))


async def blocked(conn: Conn, one: str, other: str) -> bool:
    """Whether either user blocks the other, read under the pair's shared lock (inside the caller's
    transaction): a block being committed is waited for."""
    await conn.execute(f"SELECT pg_advisory_xact_lock_shared({PAIR_KEY})", one, other)
    return bool(await conn.fetchval(_BLOCKED, one, other))


async def lock_pair(conn: Conn, one: str, other: str) -> None:
    """Take the pair's lock exclusively (inside the caller's transaction): for changing a block."""
    await conn.execute(f"SELECT pg_advisory_xact_lock({PAIR_KEY})", one, other)


async def store_pre_order(
    pool: asyncpg.Pool, message: Outgoing, pair: Participants
) -> tuple[ChatMessage, bool] | None:
    """Store a message in a pre-order thread in one transaction, after checking that no block stands
    between the pair and the application is still pending. Returns None when an order exists for the
    application by now (store it as an order chat message). Raises HubError `forbidden`."""
    async with pool.acquire() as conn, conn.transaction():
        if await blocked(conn, pair.client_id, pair.doer_id):
            raise HubError("forbidden", "One of you has blocked the other: no new messages here.")
        row = await conn.fetchrow(
            "SELECT a.status, EXISTS (SELECT 1 FROM orders o WHERE o.id = a.id) AS ordered"
            " FROM applications a WHERE a.id = $1",
            message.order_id,
        )
        if row is None:
            raise HubError("not_found", f"No order or application {message.order_id}.")
        if row["ordered"]:
            return None
        if row["status"] != "pending":
            raise HubError(
                "forbidden",
                f"This application is {row['status']}: its thread takes no new messages.",
            )
        (answer,) = await chat.store_batch(conn, [message])
        return answer
