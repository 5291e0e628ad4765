"""DELETE /api/users/me: account deletion.

Refused (409, details.reason) while the account is part of something unfinished: an order not
completed or cancelled, or money in escrow, as client or doer (open_orders); money in the wallet or
pending (money_held); a withdrawal on its way to a bank (payout_pending); a refund owed to the user
not yet processed (refund_pending). Otherwise, in one transaction, the users row stays (orders,
ledger transfers and messages point to it) with every personal field erased and deleted_at set;
what the user owned alone is deleted; their open gigs are cancelled and pending applications
withdrawn; every session ends (SESSION_REVOKED {reason: account_deleted} through the outbox, to
every hub, both transports) and every token is refused from the commit on (rest/http.py,
hub/revoke.py). README "Account deletion" lists each table's fate.

Races: the row is locked FOR UPDATE first; a request of the user that opens something (apply, post,
withdraw, pay) reads the row FOR KEY SHARE in its transaction (rest/account_rules.py) and an order
insert takes KEY SHARE on both parties' rows, so either that commits first (and the checks here see
it) or it waits and then finds the account deleted. The rows changed here besides the user's own
are locked NOWAIT: one held by a request in flight (an application being accepted) refuses the
deletion (409 busy) instead of waiting in a lock cycle."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

import asyncpg
from aiohttp import web

from hub.events import SessionRevoked, to_wire
from hub.keys import POOL, SETTINGS
from hub.outbox import enqueue
from hub.storage import StorageError
from rest.api import Deleted, Routes, ok
from rest.errors import ApiError
from rest.http import require_user
from rest.media_store import MEDIA
from rest.refresh import clear_cookie

if TYPE_CHECKING:
    from hub.db import Conn

log = logging.getLogger("gigwire.account")
routes = Routes("users")

# What is erased from the users row: every personal field; the row keeps id, roles, money columns
# (zero: deletion needs them so), rating and counters, created_at.
_ERASE = (
    "UPDATE users SET phone = NULL, email = NULL, name = NULL, avatar_url = NULL, bio = NULL,"
    " university = NULL, course = NULL, year = NULL, graduation_year = NULL, id_document_url = NULL,"
    " google_sub = NULL, phone_verified = false, email_verified = false, id_verified = false,"
    " bank_account_id = NULL, badges = '{}', deleted_at = now() WHERE id = $1"
)
# The user's own pictures and documents, deleted with their bytes; gig and chat attachments stay with
# the gigs and messages that show them.
_PRIVATE_MEDIA = "('avatar', 'id_document')"
# Rows the user owned alone, deleted outright.
_DELETE = (
    "DELETE FROM refresh_tokens WHERE user_id = $1",
    "DELETE FROM devices WHERE user_id = $1",
    "DELETE FROM notifications WHERE user_id = $1",
    "DELETE FROM notification_preferences WHERE user_id = $1",
    "DELETE FROM push_jobs WHERE user_id = $1",
    "DELETE FROM push_dead_letters WHERE user_id = $1",
    "DELETE FROM feed WHERE user_id = $1",
    "DELETE FROM feed_sequences WHERE user_id = $1",
    "DELETE FROM email_codes WHERE user_id = $1",
    "DELETE FROM idempotency_keys WHERE user_id = $1",
    "DELETE FROM saved_gigs WHERE user_id = $1",
    "DELETE FROM user_blocks WHERE blocker_id = $1 OR blocked_id = $1",
    "DELETE FROM chat_push_pending WHERE user_id = $1",
    # A pending ID check names a document deleted here; decided ones stay as the admins' record.
    "DELETE FROM id_verifications WHERE user_id = $1 AND status = 'pending'",
)


async def _refusal(conn: Conn, user: Any) -> ApiError | None:
    """Why this account cannot be deleted now, or None."""
    user_id = user["id"]
    orders = await conn.fetch(
        "SELECT id::text AS id FROM orders WHERE (client_id = $1 OR doer_id = $1)"
        " AND (status NOT IN ('completed', 'cancelled') OR escrow_state = 'funded')"
        " ORDER BY created_at LIMIT 20",
        user_id,
    )
    if orders:
        return ApiError(
            "conflict",
            "You have orders in progress; finish or cancel them before deleting your account.",
            details={"reason": "open_orders", "orderIds": [r["id"] for r in orders]},
        )
    if user["wallet_balance"] or user["pending_balance"]:
        return ApiError(
            "conflict",
            "Your wallet holds money; withdraw it before deleting your account.",
            details={
                "reason": "money_held",
                "walletBalance": user["wallet_balance"],
                "pendingBalance": user["pending_balance"],
            },
        )
    if await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM withdrawals WHERE user_id = $1"
        " AND status IN ('pending', 'processing'))",
        user_id,
    ):
        return ApiError(
            "conflict",
            "A withdrawal to your bank is still on its way; delete your account once it has arrived.",
            details={"reason": "payout_pending"},
        )
    if await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM gateway_refunds r JOIN orders o ON o.id = r.order_id"
        " WHERE o.client_id = $1 AND (r.owed OR r.status = 'initiated'))",
        user_id,
    ):
        return ApiError(
            "conflict",
            "A refund to you is still on its way; delete your account once it has arrived.",
            details={"reason": "refund_pending"},
        )
    return None


# Every row deletion changes besides the user's own, locked NOWAIT right after the user's row: a
# request holding one of them may be waiting for the user's row (a refresh token rotated, then the
# next one inserted; a feed counter bumped, then the feed row inserted; an application being
# accepted, then the order inserted), so waiting here could close a lock cycle.
_LOCKS = (
    "SELECT 1 FROM gigs WHERE id IN (SELECT gig_id FROM applications WHERE doer_id = $1"
    " AND status = 'pending') FOR NO KEY UPDATE NOWAIT",
    "SELECT 1 FROM applications WHERE doer_id = $1 AND status = 'pending' FOR UPDATE NOWAIT",
    "SELECT 1 FROM gigs WHERE client_id = $1 AND status IN ('open', 'closed') FOR UPDATE NOWAIT",
    "SELECT 1 FROM applications WHERE gig_id IN (SELECT id FROM gigs WHERE client_id = $1"
    " AND status IN ('open', 'closed')) AND status = 'pending' FOR UPDATE NOWAIT",
    "SELECT 1 FROM bank_accounts WHERE user_id = $1 FOR UPDATE NOWAIT",
    f"SELECT 1 FROM media WHERE owner_id = $1 AND kind IN {_PRIVATE_MEDIA} FOR UPDATE NOWAIT",
    *(stmt.replace("DELETE FROM", "SELECT 1 FROM") + " FOR UPDATE NOWAIT" for stmt in _DELETE),
)


async def _close_listings(conn: Conn, user_id: Any) -> None:
    """Withdraw the user's pending applications and cancel their open gigs (rejecting the
    applications pending on them)."""
    withdrawn = await conn.fetch(
        "UPDATE applications SET status = 'withdrawn', updated_at = now() WHERE doer_id = $1"
        " AND status = 'pending' RETURNING gig_id",
        user_id,
    )
    for row in withdrawn:
        await conn.execute(
            "UPDATE gigs SET applications_count = greatest(applications_count - 1, 0) WHERE id = $1",
            row["gig_id"],
        )
    gigs = await conn.fetch(
        "UPDATE gigs SET status = 'cancelled', updated_at = now() WHERE client_id = $1"
        " AND status IN ('open', 'closed') RETURNING id",
        user_id,
    )
    await conn.execute(
        "UPDATE applications SET status = 'rejected', updated_at = now() WHERE gig_id = ANY($1::uuid[])"
        " AND status = 'pending'",
        [r["id"] for r in gigs],
    )


async def _erase(conn: Conn, user: Any) -> list[str]:
    """Erase the account; the ids of the media whose bytes are to be deleted after the commit."""
    user_id = user["id"]
    for lock in _LOCKS:
        await conn.execute(lock, user_id)
    if user["phone"] is not None:
        await conn.execute("SELECT 1 FROM otp_codes WHERE phone = $1 FOR UPDATE NOWAIT", user["phone"])
    await _close_listings(conn, user_id)
    # Bank accounts stay for the withdrawals that name them, without the holder's name or digits.
    await conn.execute(
        "UPDATE bank_accounts SET holder_name = 'deleted', last4 = '0000', number_hash = 'deleted:' || id,"
        " deleted_at = coalesce(deleted_at, now()) WHERE user_id = $1",
        user_id,
    )
    if user["phone"] is not None:
        await conn.execute("DELETE FROM otp_codes WHERE phone = $1", user["phone"])
    media = await conn.fetch(
        f"DELETE FROM media WHERE owner_id = $1 AND kind IN {_PRIVATE_MEDIA} RETURNING id::text AS id",
        user_id,
    )
    for statement in _DELETE:
        await conn.execute(statement, user_id)
    await conn.execute(_ERASE, user_id)
    event = SessionRevoked(user_id=str(user_id), reason="account_deleted")
    await enqueue(
        cast("asyncpg.Connection", conn), "SESSION_REVOKED", to_wire(event), user_ids=[str(user_id)]
    )
    return [r["id"] for r in media]


_BUSY = ApiError(
    "conflict",
    "Something of yours is changing right now (an application being accepted, an order opening);"
    " try again in a moment.",
    details={"reason": "busy"},
)


@routes.delete(
    "/api/users/me",
    summary="Delete my account",
    description="409 (details.reason) while the account has open_orders (orderIds), money_held"
    " (walletBalance, pendingBalance), payout_pending, refund_pending, or busy (something of it is"
    " changing; retry). Otherwise personal data is erased (README: Account deletion), open gigs are"
    " cancelled, pending applications withdrawn, every session is closed and every token refused."
    " The refresh-token cookie is cleared.",
    auth=True,
    response=Deleted,
    errors=(409,),
)
async def delete_me(request: web.Request) -> web.Response:
    """Delete the caller's account, or say why it cannot be deleted yet."""
    claims = require_user(request)
    try:
        async with request.app[POOL].acquire() as conn, conn.transaction():
            user = await conn.fetchrow(
                "SELECT id, phone, wallet_balance, pending_balance FROM users"
                " WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
                claims.user_id,
            )
            if user is None:
                raise ApiError(
                    "unauthorized", "The user of this access token no longer exists; log in again."
                )
            refusal = await _refusal(conn, user)
            if refusal is not None:
                raise refusal
            media = await _erase(conn, user)
    except (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError):
        raise _BUSY from None
    # After the commit, as DELETE /api/media does: no row names these bytes any more.
    storage = request.app[MEDIA].storage
    for media_id in media:
        try:
            await storage.delete(media_id)
        except StorageError as exc:
            log.warning("media bytes left in the store", extra={"media": media_id, "error": str(exc)})
    log.info("account deleted", extra={"userId": claims.user_id})
    response = ok(Deleted(id=claims.user_id))
    clear_cookie(response, request.app[SETTINGS])
    return response
