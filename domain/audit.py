"""The append-only audit log of admin actions (table admin_audit, 0019_admin.sql).

`record` is called by every admin action inside the transaction of the action itself: the action
and its audit row commit together or not at all. The table refuses UPDATE, DELETE and TRUNCATE (a
trigger), so a row once written stays as written. `before` and `after` are what the action changed,
as JSON objects (wire names), or None when nothing existed before or after."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hub.db import Conn


async def record(
    conn: Conn,
    *,
    actor_id: str,
    action: str,
    target_type: str,
    target_id: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    reason: str | None = None,
) -> int:
    """Append one audit row in the caller's transaction; its id. `action` is a dotted slug such as
    `user.ban`; `target_type` a table-like noun (user, gig, order, report...)."""
    audit_id = await conn.fetchval(
        "INSERT INTO admin_audit (actor_id, action, target_type, target_id, before, after, reason)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        actor_id,
        action,
        target_type,
        target_id,
        dict(before) if before is not None else None,
        dict(after) if after is not None else None,
        reason,
    )
    return int(audit_id)
