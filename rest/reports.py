"""Safety reports: any user reports a user, a gig or a chat message; admins work the queue.

POST /api/reports: the target must exist and be visible to the reporter (a message only in an order
of the reporter's), not the reporter themself; one open report per reporter and target (409), and at
most REPORTS_PER_HOUR reports an hour per reporter (429 with Retry-After). Admins list the reports
(GET /api/admin/reports?status=open, oldest first) and resolve one with the action taken and a note,
audited in the same transaction. Resolving records what was done; the action itself (a ban, hiding
a gig) is its own admin route and audit row."""

from __future__ import annotations

from typing import Annotated, Literal

import asyncpg
import msgspec
from aiohttp import web

from domain import audit
from hub.keys import POOL
from hub.model import EpochMs, Uuid
from rest.admin_common import Note, UuidIn, require_admin
from rest.api import Body, Routes, Wire, int_query, load, load_all, ok
from rest.errors import ApiError
from rest.http import path_uuid, query_int, require_user

routes = Routes("reports")

REPORTS_PER_HOUR = 10
"""Reports one user may file in any hour (counted in PostgreSQL, so every process agrees)."""

TargetType = Literal["user", "gig", "message"]
Reason = Literal["spam", "scam", "harassment", "inappropriate", "fake_profile", "other"]
Action = Literal["none", "warned", "content_removed", "gig_hidden", "user_banned"]


class Report(Wire):
    """A safety report and, once resolved, what was done."""

    id: Uuid
    reporter_id: Uuid
    target_type: TargetType
    target_id: UuidIn
    reason: Reason
    details: str | None
    status: Literal["open", "resolved"]
    action: Action | None
    note: str | None
    resolved_by: Uuid | None
    resolved_at: EpochMs | None
    created_at: EpochMs


class ReportInput(Body):
    """What is reported, and why."""

    target_type: TargetType
    target_id: Uuid
    reason: Reason
    details: Annotated[str, msgspec.Meta(max_length=2000, pattern=r"^[^\x00]*$")] | None = None


class ResolveInput(Body):
    """What the admin did about the report."""

    action: Annotated[Action, msgspec.Meta(description="recorded; take the action itself on its own route")]
    note: Note | None = None


# target type -> whether the target exists for the reporter ($1 target, $2 reporter).
_VISIBLE = {
    "user": "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND $2::uuid IS NOT NULL)",
    "gig": "SELECT EXISTS (SELECT 1 FROM gigs WHERE id = $1 AND (hidden_at IS NULL OR client_id = $2))",
    "message": "SELECT EXISTS (SELECT 1 FROM messages m JOIN orders o ON o.id = m.order_id"
    " WHERE m.id = $1 AND $2 IN (o.client_id, o.doer_id))",
}


@routes.post(
    "/api/reports",
    summary="Report a user, a gig or a chat message to the admins",
    description=f"404 when the target does not exist (a message: not in an order of yours); 400 when"
    f" reporting yourself; 409 while your earlier report of the same target is open; 429 after"
    f" {REPORTS_PER_HOUR} reports in an hour.",
    auth=True,
    body=ReportInput,
    response=Report,
    status=201,
    errors=(400, 401, 403, 404, 409, 429),
)
async def create_report(request: web.Request, body: ReportInput) -> web.Response:
    """File a report."""
    claims = require_user(request)
    if body.target_type == "user" and body.target_id == claims.user_id:
        raise ApiError("bad_request", "You cannot report yourself.")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        # One reporter's reports are counted and written one at a time, so the hourly cap is exact.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('report:' || $1))", claims.user_id)
        window = await conn.fetchrow(
            "SELECT count(*) AS n, ceil(extract(epoch FROM min(created_at) + interval '1 hour' - now()))"
            " AS wait FROM reports WHERE reporter_id = $1 AND created_at > now() - interval '1 hour'",
            claims.user_id,
        )
        assert window is not None
        if window["n"] >= REPORTS_PER_HOUR:
            wait = max(int(window["wait"] or 1), 1)  # until the oldest report of the hour leaves it
            raise ApiError(
                "rate_limited", f"At most {REPORTS_PER_HOUR} reports an hour; try again in {wait} s.",
                headers={"Retry-After": str(wait)},
            )  # fmt: skip
        if not await conn.fetchval(_VISIBLE[body.target_type], body.target_id, claims.user_id):
            raise ApiError("not_found", f"No {body.target_type} {body.target_id} to report.")
        try:
            row = await conn.fetchrow(
                "INSERT INTO reports (reporter_id, target_type, target_id, reason, details)"
                " VALUES ($1, $2, $3, $4, $5) RETURNING *",
                claims.user_id, body.target_type, body.target_id, body.reason, body.details,
            )  # fmt: skip
        except asyncpg.UniqueViolationError:
            raise ApiError("conflict", "You already reported this; an admin will look at it.") from None
    return ok(load(Report, row), status=201)


@routes.get(
    "/api/admin/reports",
    summary="Admin: the safety reports queue",
    description="status (default open): oldest first, paged.",
    auth=True,
    response=list[Report],
    meta={"page": int, "limit": int, "total": int},
    parameters=(
        {"name": "status", "in": "query", "required": False, "schema": {"enum": ["open", "resolved"]}},
        int_query("page", 1, 10**6),
        int_query("limit", 1, 200),
    ),
    errors=(400, 401, 403),
)
async def list_reports(request: web.Request) -> web.Response:
    """Reports in one status, oldest first."""
    require_admin(request)
    status = request.query.get("status") or "open"
    if status not in ("open", "resolved"):
        raise ApiError("bad_request", "Query parameter status must be open or resolved.")
    page = query_int(request, "page", 1, 1, 10**6)
    limit = query_int(request, "limit", 50, 1, 200)
    pool = request.app[POOL]
    rows = await pool.fetch(
        "SELECT * FROM reports WHERE status = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3",
        status, limit, (page - 1) * limit,
    )  # fmt: skip
    total = await pool.fetchval("SELECT count(*) FROM reports WHERE status = $1", status)
    return ok(load_all(Report, rows), page=page, limit=limit, total=total)


@routes.post(
    "/api/admin/reports/{id}/resolve",
    summary="Admin: resolve a report with the action taken",
    description="409 when it is already resolved.",
    auth=True,
    body=ResolveInput,
    response=Report,
    errors=(400, 401, 403, 404, 409),
)
async def resolve_report(request: web.Request, body: ResolveInput) -> web.Response:
    """Close an open report."""
    claims = require_admin(request)
    report_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "UPDATE reports SET status = 'resolved', action = $2, note = $3, resolved_by = $4,"
            " resolved_at = now() WHERE id = $1 AND status = 'open' RETURNING *",
            report_id, body.action, body.note, claims.user_id,
        )  # fmt: skip
        if row is None:
            exists = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM reports WHERE id = $1)", report_id)
            if not exists:
                raise ApiError("not_found", f"No report {report_id}.")
            raise ApiError("conflict", "This report is already resolved.")
        await audit.record(
            conn, actor_id=claims.user_id, action="report.resolve", target_type="report", target_id=report_id,
            before={"status": "open"}, after={"status": "resolved", "action": body.action}, reason=body.note,
        )  # fmt: skip
    return ok(load(Report, row))
