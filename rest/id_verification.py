"""ID verification: a user submits an uploaded identity document; admins approve or reject it.

POST /api/users/me/id-verification {documentMediaId} queues a submission (one pending at a time; 409
once verified). Admins list the queue (GET /api/admin/id-verifications?status=pending, oldest first)
and decide: approve sets users.id_verified = true, reject records the reason; either notifies the
user (domain/admin_notices.py) and writes the audit row, in the decision's transaction."""

from __future__ import annotations

from typing import Annotated, Literal

import asyncpg
import msgspec
from aiohttp import web

from domain import admin_notices, audit, trust
from hub.db import Conn
from hub.keys import POOL
from hub.model import EpochMs, Uuid
from rest.admin_common import OptionalReason, ReasonInput, UuidIn, require_admin
from rest.api import Body, Routes, Wire, int_query, load, load_all, ok
from rest.errors import ApiError
from rest.http import path_uuid, query_int, require_user

routes = Routes("id-verification")

Status = Literal["pending", "approved", "rejected"]


class IdVerification(Wire):
    """A submitted identity document and its decision."""

    id: Uuid
    user_id: Uuid
    document_media_id: Annotated[Uuid, msgspec.Meta(description="the uploaded document (POST /api/media)")]
    status: Status
    reason: Annotated[
        str | None, msgspec.Meta(description="the admin's reason (shown to the user on reject)")
    ]
    decided_by: Uuid | None
    decided_at: EpochMs | None
    created_at: EpochMs


class SubmitInput(Body):
    """The uploaded identity document to verify."""

    document_media_id: Annotated[UuidIn, msgspec.Meta(description="an id_document media id of the caller's")]


async def check_document(conn: Conn, user_id: str, media_id: str) -> None:
    """Refuse (404) a media id that is not the caller's own upload of kind id_document (0017_media.sql).
    id_verifications keeps the id without a foreign key: a document the user deletes later leaves the
    submission and its decision on record."""
    mine = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM media WHERE id = $1 AND owner_id = $2 AND kind = 'id_document')",
        media_id,
        user_id,
    )
    if not mine:
        raise ApiError(
            "not_found",
            f"No identity document {media_id} of yours; upload it with POST /api/media (kind id_document).",
        )


@routes.post(
    "/api/users/me/id-verification",
    summary="Submit an identity document for verification",
    description="Queues the document (an id_document upload of the caller's, else 404) for an admin; admins"
    " read it through GET /api/media/{id}/content. 409 while another submission is pending, or when the"
    " user is already verified.",
    auth=True,
    body=SubmitInput,
    response=IdVerification,
    status=201,
    errors=(400, 401, 403, 404, 409),
)
async def submit(request: web.Request, body: SubmitInput) -> web.Response:
    """Queue the caller's document."""
    claims = require_user(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        verified = await conn.fetchval(
            "SELECT id_verified FROM users WHERE id = $1 FOR UPDATE", claims.user_id
        )
        if verified:
            raise ApiError("conflict", "Your identity is already verified.")
        await check_document(conn, claims.user_id, body.document_media_id)
        try:
            row = await conn.fetchrow(
                "INSERT INTO id_verifications (user_id, document_media_id) VALUES ($1, $2) RETURNING *",
                claims.user_id,
                body.document_media_id,
            )
        except asyncpg.UniqueViolationError:
            raise ApiError("conflict", "A submission of yours is already waiting for review.") from None
    return ok(load(IdVerification, row), status=201)


@routes.get(
    "/api/users/me/id-verification",
    summary="The caller's latest identity verification submission",
    auth=True,
    response=IdVerification,
    errors=(401, 403, 404),
)
async def latest(request: web.Request) -> web.Response:
    """The newest submission of the caller, or 404 when there is none."""
    claims = require_user(request)
    row = await request.app[POOL].fetchrow(
        "SELECT * FROM id_verifications WHERE user_id = $1 ORDER BY created_at DESC, id LIMIT 1",
        claims.user_id,
    )
    if row is None:
        raise ApiError("not_found", "You have not submitted an identity document.")
    return ok(load(IdVerification, row))


@routes.get(
    "/api/admin/id-verifications",
    summary="Admin: the ID verification queue",
    description="status (default pending): oldest first, paged.",
    auth=True,
    response=list[IdVerification],
    meta={"page": int, "limit": int, "total": int},
    parameters=(
        {
            "name": "status",
            "in": "query",
            "required": False,
            "schema": {"enum": ["pending", "approved", "rejected"]},
        },
        int_query("page", 1, 10**6),
        int_query("limit", 1, 200),
    ),
    errors=(400, 401, 403),
)
async def queue(request: web.Request) -> web.Response:
    """Submissions in one status, oldest first."""
    require_admin(request)
    status = request.query.get("status") or "pending"
    if status not in ("pending", "approved", "rejected"):
        raise ApiError("bad_request", "Query parameter status must be pending, approved or rejected.")
    page = query_int(request, "page", 1, 1, 10**6)
    limit = query_int(request, "limit", 50, 1, 200)
    pool = request.app[POOL]
    rows = await pool.fetch(
        "SELECT * FROM id_verifications WHERE status = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3",
        status,
        limit,
        (page - 1) * limit,
    )
    total = await pool.fetchval("SELECT count(*) FROM id_verifications WHERE status = $1", status)
    return ok(load_all(IdVerification, rows), page=page, limit=limit, total=total)


async def _decide(request: web.Request, approved: bool, reason: str | None) -> web.Response:
    claims = require_admin(request)
    verification_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await conn.fetchrow("SELECT * FROM id_verifications WHERE id = $1 FOR UPDATE", verification_id)
        if row is None:
            raise ApiError("not_found", f"No ID verification {verification_id}.")
        if row["status"] != "pending":
            raise ApiError(
                "conflict", f"This submission was already {row['status']}.", details={"status": row["status"]}
            )
        status = "approved" if approved else "rejected"
        decided = await conn.fetchrow(
            "UPDATE id_verifications SET status = $2, reason = $3, decided_by = $4, decided_at = now()"
            " WHERE id = $1 RETURNING *",
            verification_id,
            status,
            reason,
            claims.user_id,
        )
        user_id = str(row["user_id"])
        # FOR NO KEY UPDATE, as domain.trust.recompute locks it (FOR UPDATE would deadlock with the
        # key-share locks of other transactions' foreign keys to this user).
        before = await conn.fetchval("SELECT id_verified FROM users WHERE id = $1 FOR NO KEY UPDATE", user_id)
        if approved:
            await conn.execute("UPDATE users SET id_verified = true WHERE id = $1", user_id)
            await trust.recompute(conn, user_id)  # a verified ID is an input of the trust score
        await admin_notices.id_verification_decided(
            conn, user_id=user_id, verification_id=verification_id, approved=approved, reason=reason
        )
        await audit.record(
            conn, actor_id=claims.user_id, action=f"id_verification.{'approve' if approved else 'reject'}",
            target_type="id_verification", target_id=verification_id,
            before={"status": "pending", "userId": user_id, "idVerified": before},
            after={"status": status, "userId": user_id, "idVerified": bool(before) or approved},
            reason=reason,
        )  # fmt: skip
    return ok(load(IdVerification, decided))


@routes.post(
    "/api/admin/id-verifications/{id}/approve",
    summary="Admin: approve an identity document (the user becomes idVerified)",
    description="409 when the submission is not pending. The user is notified.",
    auth=True,
    body=OptionalReason,
    response=IdVerification,
    errors=(400, 401, 403, 404, 409),
)
async def approve(request: web.Request, body: OptionalReason) -> web.Response:
    """Approve a pending submission."""
    return await _decide(request, True, body.reason)


@routes.post(
    "/api/admin/id-verifications/{id}/reject",
    summary="Admin: reject an identity document, with the reason the user is told",
    description="409 when the submission is not pending. The user is notified with the reason and may"
    " submit another.",
    auth=True,
    body=ReasonInput,
    response=IdVerification,
    errors=(400, 401, 403, 404, 409),
)
async def reject(request: web.Request, body: ReasonInput) -> web.Response:
    """Reject a pending submission."""
    return await _decide(request, False, body.reason)
