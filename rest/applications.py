"""Applications to gigs: a doer applies (once per gig, while it is open), the gig's owner lists,
rejects or accepts them, the doer lists their own and withdraws a pending one.

Accepting is one transaction under the gig's row lock: the application becomes accepted, every other
pending application of the gig is rejected, the gig goes in_progress and the order is opened
(awaiting payment) through domain.orders.open_order, so two concurrent accepts make exactly one order.
applications_count counts the applications that were not withdrawn: +1 on apply, -1 on withdraw.
A block between the doer and the gig's owner, either way (rest/blocks.py), refuses applying and
accepting with 403 forbidden, details.reason "blocked": no new order starts between them.

Authorization: an application is visible to its doer and to the gig's owner; anyone else gets 404.
The doer and the owner get 403 for the other party's actions. A gig's list is the owner's (403)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, cast, get_args

import asyncpg
import msgspec
from aiohttp import web

from domain import notices, orders
from domain.order_states import Order
from hub import outbox, threads
from hub.keys import POOL, SETTINGS
from hub.model import EpochMs, Uuid
from rest.account_rules import require_account
from rest.api import Body, Routes, Wire, int_query, load, load_all, ok
from rest.errors import ApiError
from rest.gig_search import MAX_MONEY
from rest.gigs import owned_gig, require_role
from rest.http import path_uuid, query_int, require_user
from rest.profiles import PublicProfile, profiles

if TYPE_CHECKING:
    from hub.db import Conn

routes = Routes("applications")

_COLUMNS = (
    "a.id::text AS id, a.gig_id::text AS gig_id, a.doer_id::text AS doer_id, a.proposal, a.bid_amount,"
    " a.currency, a.status, a.created_at, a.updated_at"
)

ApplicationStatus = Literal["pending", "accepted", "rejected", "withdrawn"]
_APP_STATUSES: tuple[str, ...] = get_args(ApplicationStatus)


class ApplicationInput(Body):
    """POST /api/gigs/{id}/applications."""

    proposal: Annotated[str, msgspec.Meta(min_length=1, max_length=5000)]
    bid_amount: Annotated[int, msgspec.Meta(ge=1, le=MAX_MONEY, description="paise")]


class Application(Wire):
    """An application as every route answers it."""

    id: Uuid
    gig_id: Uuid
    doer_id: Uuid
    proposal: str
    bid_amount: Annotated[int, msgspec.Meta(ge=1, description="paise")]
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
    status: ApplicationStatus
    created_at: EpochMs
    updated_at: EpochMs


class ApplicationWithApplicant(Application):
    """An application as the gig's owner lists it: with the applicant's public profile."""

    applicant: PublicProfile


class Accepted(Wire):
    """The accepted application and the order it opened."""

    application: Application
    order: Order


_LIST = {"page": int, "limit": int, "total": int}
_PAGING = (
    {
        "name": "status",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": list(_APP_STATUSES)},
    },
    int_query("page", 1, 100_000),
    int_query("limit", 1, 100),
)


@routes.post(
    "/api/gigs/{id}/applications",
    summary="Apply to an open gig (doer role; once per gig; not one's own gig)",
    description="422 (details.reason profile_incomplete, details.missing) until the profile is complete.",
    auth=True,
    body=ApplicationInput,
    response=Application,
    status=201,
    errors=(403, 404, 409, 422),
)
async def apply(request: web.Request, body: ApplicationInput) -> web.Response:
    """Apply to an open gig (doer role, not one's own gig, once per gig); tells the owner live."""
    claims = require_user(request)
    require_role(claims, "doer")
    gig_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await require_account(conn, claims.user_id)
        # FOR SHARE: applying does not race a close or an accept of the same gig.
        gig = await conn.fetchrow(
            "SELECT client_id::text AS client_id, status, currency FROM gigs WHERE id = $1"
            " AND hidden_at IS NULL FOR SHARE",  # a hidden gig (0019_admin.sql) takes no applications
            gig_id,
        )
        if gig is None:
            raise ApiError("not_found", f"No gig {gig_id}.")
        if gig["client_id"] == claims.user_id:
            raise ApiError("forbidden", "You cannot apply to your own gig.")
        if gig["status"] != "open":
            raise ApiError("conflict", f"This gig is {gig['status']} and takes no applications.")
        if await threads.blocked(conn, claims.user_id, gig["client_id"]):
            raise ApiError(
                "forbidden",
                "You cannot apply: you and the gig's owner have blocked each other (either way).",
                details={"reason": "blocked"},
            )
        row = await conn.fetchrow(
            "INSERT INTO applications AS a (gig_id, doer_id, proposal, bid_amount, currency)"
            f" VALUES ($1, $2, $3, $4, $5) ON CONFLICT (gig_id, doer_id) DO NOTHING RETURNING {_COLUMNS}",
            gig_id,
            claims.user_id,
            body.proposal,
            body.bid_amount,
            gig["currency"],
        )
        if row is None:
            raise ApiError("conflict", "You have already applied to this gig (once per gig).")
        await conn.execute(
            "UPDATE gigs SET applications_count = applications_count + 1 WHERE id = $1", gig_id
        )
        await outbox.enqueue(
            cast(asyncpg.Connection, conn),  # a pool's proxy is a Connection at runtime
            "NEW_APPLICATION",
            {
                "gigId": gig_id,
                "applicationId": row["id"],
                "doerId": claims.user_id,
                "bidAmount": body.bid_amount,
            },
            user_ids=[gig["client_id"]],
        )
        await notices.new_application(conn, gig={"id": gig_id, **dict(gig)}, application=row)
    return ok(load(Application, row), status=201)


@routes.get(
    "/api/gigs/{id}/applications",
    summary="The applications to a gig, newest first (the gig's owner), each with its applicant's"
    " public profile",
    auth=True,
    response=list[ApplicationWithApplicant],
    meta=_LIST,
    parameters=_PAGING,
    errors=(400, 403, 404),
)
async def gig_applications(request: web.Request) -> web.Response:
    """The applications to one gig, newest first (the gig's owner only); ?status= filters."""
    claims = require_user(request)
    gig_id = path_uuid(request)
    status = _status_filter(request)
    page = query_int(request, "page", 1, 1, 100_000)
    limit = query_int(request, "limit", 20, 1, 100)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await owned_gig(conn, gig_id, claims.user_id)
        items, total = await _page(conn, "a.gig_id = $1", gig_id, status, page, limit)
        found = await profiles(conn, (a.doer_id for a in items))
    listed = [
        ApplicationWithApplicant(**msgspec.structs.asdict(a), applicant=found[a.doer_id]) for a in items
    ]
    return ok(listed, page=page, limit=limit, total=total)


@routes.get(
    "/api/applications/mine",
    summary="The caller's own applications, newest first",
    auth=True,
    response=list[Application],
    meta=_LIST,
    parameters=_PAGING,
    errors=(400,),
)
async def my_applications(request: web.Request) -> web.Response:
    """The caller's own applications, newest first; ?status= filters."""
    claims = require_user(request)
    status = _status_filter(request)
    page = query_int(request, "page", 1, 1, 100_000)
    limit = query_int(request, "limit", 20, 1, 100)
    async with request.app[POOL].acquire() as conn:
        items, total = await _page(conn, "a.doer_id = $1", claims.user_id, status, page, limit)
    return ok(items, page=page, limit=limit, total=total)


def _status_filter(request: web.Request) -> str | None:
    status = request.query.get("status")
    if status is not None and status not in _APP_STATUSES:
        raise ApiError(
            "bad_request",
            f"Query parameter status must be one of {', '.join(_APP_STATUSES)}.",
            details={"parameter": "status"},
        )
    return status


async def _page(
    conn: Conn, where: str, owner: str, status: str | None, page: int, limit: int
) -> tuple[list[Application], int]:
    clause = f"{where} AND ($2::text IS NULL OR a.status = $2)"
    total: int = await conn.fetchval(f"SELECT count(*) FROM applications a WHERE {clause}", owner, status)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM applications a WHERE {clause}"
        " ORDER BY a.created_at DESC, a.id DESC LIMIT $3 OFFSET $4",
        owner,
        status,
        limit,
        (page - 1) * limit,
    )
    return load_all(Application, rows), total


async def _locked(conn: Conn, app_id: str, user_id: str) -> tuple[asyncpg.Record, asyncpg.Record]:
    """The application and its gig, the gig's row locked first (the one lock order of this module);
    not_found unless the caller is the application's doer or the gig's owner."""
    gig_id = await conn.fetchval("SELECT gig_id FROM applications WHERE id = $1", app_id)
    gig = None
    if gig_id is not None:
        gig = await conn.fetchrow(
            "SELECT id::text AS id, client_id::text AS client_id, status, currency FROM gigs"
            " WHERE id = $1 FOR UPDATE",
            gig_id,
        )
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM applications a WHERE a.id = $1 FOR UPDATE", app_id)
    if gig is None or row is None or user_id not in (row["doer_id"], gig["client_id"]):
        raise ApiError("not_found", f"No application {app_id}.")
    return row, gig


_ACTION_ERRORS = (403, 404, 409)
_ACTION: dict[str, Any] = {"auth": True, "response": Application, "errors": _ACTION_ERRORS}
_VERBS = {"withdrawn": "withdraw", "rejected": "reject", "accepted": "accept"}


async def _pending(
    conn: Conn, app_id: str, user_id: str, to: Literal["withdrawn", "rejected", "accepted"]
) -> tuple[asyncpg.Record, asyncpg.Record]:
    """The application and its gig, locked by _locked, once the caller may move it to `to`: only the
    applicant may withdraw it and only the gig's owner reject or accept it (forbidden otherwise), and
    only while it is pending (conflict otherwise)."""
    row, gig = await _locked(conn, app_id, user_id)
    verb = _VERBS[to]
    if to == "withdrawn":
        if row["doer_id"] != user_id:
            raise ApiError("forbidden", f"Only the applicant may {verb} an application.")
    elif gig["client_id"] != user_id:
        raise ApiError("forbidden", f"Only the gig's owner may {verb} an application.")
    if row["status"] != "pending":
        raise ApiError("conflict", f"Only a pending application can be {to}; this one is {row['status']}.")
    return row, gig


async def _set_status(conn: Conn, app_id: str, status: str) -> asyncpg.Record:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"UPDATE applications a SET status = $2, updated_at = now() WHERE a.id = $1 RETURNING {_COLUMNS}",
        app_id,
        status,
    )
    assert row is not None
    return row


@routes.post("/api/applications/{id}/withdraw", summary="Withdraw one's own pending application", **_ACTION)
async def withdraw(request: web.Request) -> web.Response:
    """Withdraw one's own pending application; it no longer counts in the gig's applicationsCount."""
    claims = require_user(request)
    app_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row, gig = await _pending(conn, app_id, claims.user_id, "withdrawn")
        row = await _set_status(conn, app_id, "withdrawn")
        await conn.execute(
            "UPDATE gigs SET applications_count = greatest(applications_count - 1, 0) WHERE id = $1",
            gig["id"],
        )
        await notices.application_withdrawn(conn, gig=gig, application=row)
    return ok(load(Application, row))


@routes.post(
    "/api/applications/{id}/reject", summary="Reject a pending application (the gig's owner)", **_ACTION
)
async def reject(request: web.Request) -> web.Response:
    """Reject a pending application (the gig's owner)."""
    claims = require_user(request)
    app_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        _, gig = await _pending(conn, app_id, claims.user_id, "rejected")
        row = await _set_status(conn, app_id, "rejected")
        await notices.application_decided(conn, gig=gig, application=row, accepted=False)
    return ok(load(Application, row))


@routes.post(
    "/api/applications/{id}/accept",
    summary="Accept a pending application (the gig's owner): opens the order awaiting payment",
    description="One transaction: this application accepted, the gig's other pending ones rejected, the"
    " gig in_progress, the order opened (ORDER_UPDATE to both parties), and each doer and both parties"
    " notified (docs/notifications.md). 403 (details.reason phone_unverified) until the owner has"
    " verified a phone: an order moves money.",
    auth=True,
    response=Accepted,
    errors=_ACTION_ERRORS,
)
async def accept(request: web.Request) -> web.Response:
    """Accept a pending application (the gig's owner, gig open or closed): the order opens awaiting
    payment, the gig goes in_progress, the gig's other pending applications are rejected."""
    claims = require_user(request)
    app_id = path_uuid(request)
    fee_bps = request.app[SETTINGS].platform_fee_bps
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await require_account(conn, claims.user_id, profile=False, phone=True)
        row, gig = await _pending(conn, app_id, claims.user_id, "accepted")
        if gig["status"] not in ("open", "closed"):
            raise ApiError("conflict", f"This gig is {gig['status']}; it already has its doer.")
        if await threads.blocked(conn, claims.user_id, row["doer_id"]):
            raise ApiError(
                "forbidden",
                "You cannot accept: you and the applicant have blocked each other (either way).",
                details={"reason": "blocked"},
            )
        row = await _set_status(conn, app_id, "accepted")
        rejected = await conn.fetch(
            "UPDATE applications SET status = 'rejected', updated_at = now()"
            " WHERE gig_id = $1 AND status = 'pending' RETURNING id, doer_id",
            gig["id"],
        )
        await conn.execute(
            "UPDATE gigs SET status = 'in_progress', updated_at = now() WHERE id = $1", gig["id"]
        )
        await notices.application_decided(conn, gig=gig, application=row, accepted=True)
        await notices.applications_auto_rejected(conn, gig=gig, rejected=list(rejected))
        order = await orders.open_order(
            conn,
            gig_id=gig["id"],
            application_id=app_id,
            client_id=claims.user_id,
            doer_id=row["doer_id"],
            amount=row["bid_amount"],
            currency=row["currency"],
            actor_id=claims.user_id,
            fee_bps=fee_bps,
        )
    return ok(Accepted(application=load(Application, row), order=order))
