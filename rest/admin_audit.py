"""GET /api/admin/audit: the append-only log of admin actions (domain/audit.py), newest first,
filtered by actor and/or target, cursor paged (the cursor is the last id seen)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from aiohttp import web

from hub.keys import POOL
from hub.model import EpochMs, Uuid
from rest.admin_common import require_admin
from rest.api import Routes, Wire, int_query, load_all, ok
from rest.errors import ApiError
from rest.http import query_int

routes = Routes("admin")


class AuditEntry(Wire):
    """One admin action, as recorded in the transaction that made it."""

    id: Annotated[int, msgspec.Meta(ge=1, description="ascending with time; the paging cursor")]
    actor_id: Annotated[Uuid, msgspec.Meta(description="the admin who acted")]
    action: Annotated[str, msgspec.Meta(description="e.g. user.ban, gig.hide, dispute.resolve")]
    target_type: Annotated[str, msgspec.Meta(description="user, gig, order, report, id_verification...")]
    target_id: str
    before: Annotated[dict[str, Any] | None, msgspec.Meta(description="what the action changed, before")]
    after: Annotated[dict[str, Any] | None, msgspec.Meta(description="what the action changed, after")]
    reason: str | None
    at: EpochMs


_TARGET = r"^[a-z_]{2,40}$"
_TOP = 2**62  # above any audit id: the default cursor


@routes.get(
    "/api/admin/audit",
    summary="Admin: the audit log of admin actions, newest first",
    description="Filters: actorId (an admin's id), targetType with optional targetId. Cursor paging:"
    " pass meta.nextCursor as cursor for the next (older) page; null when there is none.",
    auth=True,
    response=list[AuditEntry],
    meta={"nextCursor": int | None},
    parameters=(
        {"name": "actorId", "in": "query", "required": False, "schema": {"type": "string", "format": "uuid"}},
        {
            "name": "targetType",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "pattern": _TARGET},
        },
        {
            "name": "targetId",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "maxLength": 100},
        },
        int_query("cursor", 1, _TOP),
        int_query("limit", 1, 200),
    ),
    errors=(400, 401, 403),
)
async def list_audit(request: web.Request) -> web.Response:
    """Audit rows matching the filters, older than `cursor`, newest first."""
    require_admin(request)
    limit = query_int(request, "limit", 50, 1, 200)
    cursor = query_int(request, "cursor", _TOP, 1, _TOP)
    where = ["id < $1"]
    args: list[Any] = [cursor]
    actor = request.query.get("actorId")
    if actor:
        try:
            args.append(uuid.UUID(actor))
        except ValueError:
            raise ApiError("bad_request", "Query parameter actorId must be a UUID.") from None
        where.append(f"actor_id = ${len(args)}")
    target_type = request.query.get("targetType")
    target_id = request.query.get("targetId")
    if target_id and not target_type:
        raise ApiError("bad_request", "Give targetType with targetId.")
    if target_type:
        if not _target_ok(target_type):
            raise ApiError("bad_request", "Query parameter targetType must match ^[a-z_]{2,40}$.")
        args.append(target_type)
        where.append(f"target_type = ${len(args)}")
    if target_id:
        if len(target_id) > 100:
            raise ApiError("bad_request", "Query parameter targetId is at most 100 characters.")
        args.append(target_id)
        where.append(f"target_id = ${len(args)}")
    args.append(limit)
    rows = await request.app[POOL].fetch(
        f"SELECT * FROM admin_audit WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ${len(args)}", *args
    )
    next_cursor = rows[-1]["id"] if len(rows) == limit else None
    return ok(load_all(AuditEntry, rows), nextCursor=next_cursor)


def _target_ok(target_type: str) -> bool:
    """Whether `target_type` is a well-formed target type."""
    return 2 <= len(target_type) <= 40 and all(c == "_" or ("a" <= c <= "z") for c in target_type)
