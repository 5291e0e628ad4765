"""/api/gigs: list and search, one gig (counting a view), create, update, delete, close, reopen,
and the caller's own gigs. Boosting is in rest/gig_boost.py, recommendations in rest/recommend.py.
What each status allows (and how a gig follows its order) is domain/gig_lifecycle.py.

Authorization: gigs are public, so a signed-in caller who is not the gig's owner gets 403 forbidden
(never a 404 that would pretend a visible gig does not exist); creating a gig needs the client role."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Annotated, Any

import asyncpg
import msgspec
from aiohttp import web

from domain.gig_lifecycle import EDITABLE_STATUSES, REOPENABLE_STATUSES
from hub.keys import POOL, SETTINGS
from hub.tokens import Claims
from rest.account_rules import require_account
from rest.api import Body, Deleted, FieldErrors, Routes, ok
from rest.errors import ApiError
from rest.gig_cursor import CursorCodec
from rest.gig_query import TOTAL_EXACT_UP_TO, GigPage, search_gigs
from rest.gig_search import (
    GIG_COLUMNS,
    Attachment,
    BudgetType,
    Category,
    Gig,
    Paise,
    list_parameters,
    list_query,
    load_gig,
)
from rest.http import bearer_claims, path_uuid, require_user
from rest.media_attach import gig_attachments

if TYPE_CHECKING:
    from hub.db import Conn

routes = Routes("gigs")

MAX_DEADLINE_MS = 5 * 365 * 86400 * 1000  # five years ahead at most
_OWNER = "Owner only: others get 403."

Title = Annotated[str, msgspec.Meta(min_length=3, max_length=200)]
Description = Annotated[str, msgspec.Meta(min_length=1, max_length=10000)]
Skill = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
Skills = Annotated[list[Skill], msgspec.Meta(max_length=20)]
Attachments = Annotated[list[Attachment], msgspec.Meta(max_length=10)]
Deadline = Annotated[int, msgspec.Meta(description="epoch milliseconds, in the future (within 5 years)")]


def _check(budget_min: int | None, budget_max: int | None, deadline: int | None) -> None:
    problems: dict[str, str] = {}
    if budget_min is not None and budget_max is not None and budget_max < budget_min:
        problems["budgetMax"] = "must be at least budgetMin"
    now_ms = int(time.time() * 1000)
    if deadline is not None and not now_ms < deadline <= now_ms + MAX_DEADLINE_MS:
        problems["deadline"] = "must be in the future, within 5 years"
    if problems:
        raise FieldErrors(problems)


def _skills(skills: list[str] | None) -> list[str] | None:
    """Skills are matched lower-case: stored so, without repeats, in the order given."""
    return None if skills is None else list(dict.fromkeys(s.strip().lower() for s in skills))


class GigInput(Body):
    """POST /api/gigs."""

    title: Title
    description: Description
    category: Category
    budget_min: Paise
    budget_max: Annotated[int, msgspec.Meta(ge=1, le=10**12, description="paise, >= budgetMin")]
    deadline: Deadline
    skills: Skills | None = None
    budget_type: BudgetType = "fixed"
    attachments: Attachments | None = None

    def __post_init__(self) -> None:
        _check(self.budget_min, self.budget_max, self.deadline)
        self.skills = _skills(self.skills)


class GigPatch(Body, omit_defaults=True):
    """PATCH /api/gigs/{id}: any of GigInput's fields, at least one."""

    title: Title | None = None
    description: Description | None = None
    category: Category | None = None
    budget_min: Paise | None = None
    budget_max: Annotated[int, msgspec.Meta(ge=1, le=10**12, description="paise, >= budgetMin")] | None = None
    deadline: Deadline | None = None
    skills: Skills | None = None
    budget_type: BudgetType | None = None
    attachments: Attachments | None = None

    def __post_init__(self) -> None:
        _check(self.budget_min, self.budget_max, self.deadline)
        self.skills = _skills(self.skills)
        if not self.columns():
            raise FieldErrors({"body": "give at least one of " + ", ".join(_WIRE_NAMES)})

    def columns(self) -> dict[str, Any]:
        """Column -> new value of each field given."""
        return {
            name: msgspec.to_builtins(value) if name == "attachments" else value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not None
        }


_WIRE_NAMES = [f.encode_name for f in msgspec.structs.fields(GigPatch)]


async def owned_gig(conn: Conn, gig_id: str, user_id: str) -> asyncpg.Record:
    """The gig row, locked FOR UPDATE, when `user_id` owns it; not_found or forbidden otherwise."""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {GIG_COLUMNS} FROM gigs g WHERE g.id = $1 FOR UPDATE", gig_id
    )
    if row is None:
        raise ApiError("not_found", f"No gig {gig_id}.")
    if row["client_id"] != user_id:
        raise ApiError("forbidden", "Only the gig's owner may do this.")
    return row


def require_role(claims: Claims, role: str) -> None:
    """Forbidden unless the caller's token carries `role` (roles are set at login)."""
    if role not in claims.roles:
        raise ApiError("forbidden", f"This needs the {role} role; add it to your profile and sign in again.")


_LIST = {
    "page": Annotated[int, msgspec.Meta(description="this page's number (counted along a cursor walk)")],
    "limit": int,
    "total": Annotated[
        int,
        msgspec.Meta(
            description=f"matches of the whole query: exact up to {TOTAL_EXACT_UP_TO:,} (and always with"
            " search); beyond, the database's estimate (totalIsEstimate true)"
        ),
    ],
    "totalIsEstimate": Annotated[
        bool, msgspec.Meta(description="true when total is an estimate (over the exact bound)")
    ],
    "nextCursor": Annotated[
        str | None,
        msgspec.Meta(description="pass as cursor for the next page (keyset); null on the last page"),
    ],
}
_GIG_ERRORS = (403, 404, 409)


@routes.get(
    "/api/gigs",
    summary="List and search gigs (boosted first); no token needed",
    auth=None,
    response=list[Gig],
    meta=_LIST,
    parameters=tuple(list_parameters()),
    errors=(400,),
)
async def list_gigs(request: web.Request) -> web.Response:
    """Search open gigs (any status with ?status=), boosted ones first; no token needed."""
    bearer_claims(request)  # a token, when sent, must be valid
    q = list_query(request)
    async with request.app[POOL].acquire() as conn:
        found = await search_gigs(conn, q, _codec(request))
    return _listed(found, q.limit)


@routes.get(
    "/api/gigs/my-gigs",
    summary="The caller's own gigs (every status unless status is given)",
    auth=True,
    response=list[Gig],
    meta=_LIST,
    parameters=tuple(list_parameters()),
    errors=(400,),
)
async def my_gigs(request: web.Request) -> web.Response:
    """The caller's own gigs, every status unless ?status= is given; same filters as GET /api/gigs."""
    claims = require_user(request)
    q = list_query(request, default_status=None)
    q.client_id = claims.user_id
    async with request.app[POOL].acquire() as conn:
        found = await search_gigs(conn, q, _codec(request))
    return _listed(found, q.limit)


def _codec(request: web.Request) -> CursorCodec:
    return CursorCodec(request.app[SETTINGS].jwt_secret)


def _listed(found: GigPage, limit: int) -> web.Response:
    return ok(
        found.items,
        page=found.page,
        limit=limit,
        total=found.total,
        totalIsEstimate=found.total_is_estimate,
        nextCursor=found.next_cursor,
    )


@routes.post(
    "/api/gigs",
    summary="Post a gig (client role)",
    description="422 (details.reason profile_incomplete, details.missing) until the profile is complete.",
    auth=True,
    body=GigInput,
    response=Gig,
    status=201,
    errors=(403, 422),
)
async def create_gig(request: web.Request, body: GigInput) -> web.Response:
    """Post a gig (client role): status open, in the configured currency."""
    claims = require_user(request)
    require_role(claims, "client")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await require_account(conn, claims.user_id)
        row = await _insert_gig(conn, request, claims.user_id, body)
    return ok(load_gig(row), status=201)


async def _insert_gig(conn: Conn, request: web.Request, user_id: str, body: GigInput) -> Any:
    """Insert the caller's new gig; its row with GIG_COLUMNS."""
    return await conn.fetchrow(
        "INSERT INTO gigs AS g (client_id, currency, title, description, category, skills, budget_type,"
        " budget_min, budget_max, deadline, attachments)"
        " VALUES ($1, $2, $3, $4, $5, coalesce($6, '{}'::text[]), $7, $8, $9, $10,"
        " coalesce($11::jsonb, '[]'::jsonb))"
        f" RETURNING {GIG_COLUMNS}",
        user_id,
        request.app[SETTINGS].currency,
        body.title,
        body.description,
        body.category,
        body.skills,
        body.budget_type,
        body.budget_min,
        body.budget_max,
        _timestamp(body.deadline),
        await gig_attachments(conn, user_id, body.attachments),
    )


@routes.get(
    "/api/gigs/{id}",
    summary="One gig; counts a view unless the viewer owns it; no token needed",
    auth=None,
    response=Gig,
    errors=(404,),
)
async def get_gig(request: web.Request) -> web.Response:
    """One gig; counts a view unless the viewer is its owner. No token needed."""
    claims = bearer_claims(request)
    gig_id = path_uuid(request)
    viewer = claims.user_id if claims else None
    admin = claims is not None and "admin" in claims.roles
    # A gig hidden by an admin is seen by its owner and admins only (others: 404).
    row = await request.app[POOL].fetchrow(
        f"UPDATE gigs g SET views_count = views_count + (client_id IS DISTINCT FROM $2::uuid)::int"
        f" WHERE g.id = $1 AND (g.hidden_at IS NULL OR g.client_id = $2::uuid OR $3)"
        f" RETURNING {GIG_COLUMNS}",
        gig_id,
        viewer,
        admin,
    )
    if row is None:
        raise ApiError("not_found", f"No gig {gig_id}.")
    return ok(load_gig(row))


@routes.patch(
    "/api/gigs/{id}",
    summary="Change an open, closed or cancelled gig",
    description=_OWNER,
    auth=True,
    body=GigPatch,
    response=Gig,
    errors=_GIG_ERRORS,
)
async def update_gig(request: web.Request, body: GigPatch) -> web.Response:
    """Change some fields of a gig nobody works on: open, closed or cancelled (owner)."""
    claims = require_user(request)
    gig_id = path_uuid(request)
    values = body.columns()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await owned_gig(conn, gig_id, claims.user_id)
        if row["status"] not in EDITABLE_STATUSES:
            raise ApiError("conflict", f"A gig that is {row['status']} can no longer be edited.")
        lo = values.get("budget_min", row["budget_min"])
        hi = values.get("budget_max", row["budget_max"])
        if hi < lo:
            raise ApiError(
                "bad_request",
                f"budgetMax must be at least budgetMin ({lo}).",
                details={"fields": {"budgetMax": "must be at least budgetMin"}},
            )
        if "deadline" in values:
            values["deadline"] = _timestamp(values["deadline"])
        if "attachments" in values:
            values["attachments"] = await gig_attachments(conn, claims.user_id, body.attachments)
        sets = ", ".join(f"{col} = ${i}" for i, col in enumerate(values, start=2))
        updated = await conn.fetchrow(
            f"UPDATE gigs g SET {sets}, updated_at = now() WHERE g.id = $1 RETURNING {GIG_COLUMNS}",
            gig_id,
            *values.values(),
        )
    return ok(load_gig(updated))


@routes.delete(
    "/api/gigs/{id}",
    summary="Delete a gig and its applications; refused once an order exists",
    description=_OWNER,
    auth=True,
    response=Deleted,
    errors=_GIG_ERRORS,
)
async def delete_gig(request: web.Request) -> web.Response:
    """Delete a gig and its applications (owner); 409 once an order exists for it."""
    claims = require_user(request)
    gig_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await owned_gig(conn, gig_id, claims.user_id)
        # An order's money history (ledger, audit, chat) points at its gig, even a cancelled one's.
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM orders WHERE gig_id = $1)", gig_id):
            raise ApiError(
                "conflict",
                "This gig has an order and is kept with the order's history; close it instead"
                " (a gig whose order was cancelled is already out of the listings).",
            )
        await conn.execute("DELETE FROM gigs WHERE id = $1", gig_id)
    return ok(Deleted(id=gig_id))


async def _move(
    request: web.Request, from_statuses: tuple[str, ...], to_status: str, verb: str
) -> web.Response:
    claims = require_user(request)
    gig_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await owned_gig(conn, gig_id, claims.user_id)
        if row["status"] not in from_statuses:
            allowed = " or ".join(from_statuses)
            raise ApiError("conflict", f"Only a {allowed} gig can be {verb}; this one is {row['status']}.")
        # A cancelled gig went cancelled because its deadline passed; a closed one reopens as before.
        if row["status"] == "cancelled" and row["deadline"] <= dt.datetime.now(dt.UTC):
            raise ApiError(
                "conflict",
                "This gig's deadline has passed; PATCH a new deadline, then reopen it.",
                details={"status": row["status"]},
            )
        moved = await conn.fetchrow(
            f"UPDATE gigs g SET status = $2, updated_at = now() WHERE g.id = $1 RETURNING {GIG_COLUMNS}",
            gig_id,
            to_status,
        )
    return ok(load_gig(moved))


@routes.post(
    "/api/gigs/{id}/close",
    summary="Close an open gig to new applications",
    description=_OWNER,
    auth=True,
    response=Gig,
    errors=_GIG_ERRORS,
)
async def close_gig(request: web.Request) -> web.Response:
    """Close an open gig to new applications (owner); pending ones stay and may still be accepted."""
    return await _move(request, ("open",), "closed", "closed")


@routes.post(
    "/api/gigs/{id}/reopen",
    summary="Reopen a closed or cancelled gig (its deadline ahead)",
    description=_OWNER + " A cancelled gig is one whose order was cancelled after its deadline.",
    auth=True,
    response=Gig,
    errors=_GIG_ERRORS,
)
async def reopen_gig(request: web.Request) -> web.Response:
    """Reopen a closed or cancelled gig to applications (owner); a cancelled one only once its
    deadline is ahead again (409 until a PATCH moves it)."""
    return await _move(request, REOPENABLE_STATUSES, "open", "reopened")


def _timestamp(epoch_ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC)
