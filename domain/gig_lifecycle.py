"""A gig's status follows its order, and what the owner may do with a gig in each status.

    open --close--> closed --reopen--> open
    open | closed --accept an application--> in_progress (rest/applications.py)
    in_progress --order approved (or resolved with release)--> completed   (final)
    in_progress --order cancelled (cancel, unpaid expiry, resolved with refund)-->
        open       when the gig's deadline is still ahead: the owner can hire someone else at once
        cancelled  when the deadline has passed; the owner may PATCH a new deadline and reopen it
    cancelled --reopen (deadline ahead)--> open

The move happens in the order's transaction (domain/orders.transition), and only while the gig is
`in_progress`, so it follows the order that put it there. The cancelled order's accepted
application and the applications rejected when it was accepted stay as they are: the owner hires
again from new applications.

Deleting: a gig that any order references is never deleted, whatever its status, because the
order's money history (ledger, audit, chat) points at it; a cancelled gig is already out of the
default listings. A gig without orders may be deleted in any status it can have (open, closed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg

    from hub.db import Conn

EDITABLE_STATUSES = ("open", "closed", "cancelled")  # PATCH: nobody is working on it
REOPENABLE_STATUSES = ("closed", "cancelled")  # POST /reopen
_COMPLETES = frozenset({"approve", "resolve_release"})
_CANCELS = frozenset({"cancel", "expire", "resolve_refund"})


async def follow_order(conn: Conn, order: asyncpg.Record, action: str) -> str | None:
    """Move the order's gig after `action`, inside the order's transaction: completed when the
    order completed, open or cancelled (by the deadline) when it was cancelled. Returns the gig's
    new status, or None when it did not move (another action, or the gig not in_progress)."""
    if action in _COMPLETES:
        sql = "'completed'"
    elif action in _CANCELS:
        sql = "CASE WHEN deadline > now() THEN 'open' ELSE 'cancelled' END"
    else:
        return None
    status: str | None = await conn.fetchval(
        f"UPDATE gigs SET status = {sql}, updated_at = now() WHERE id = $1 AND status = 'in_progress'"
        " RETURNING status",
        order["gig_id"],
    )
    return status
