"""/api/gigs: list and search, one gig (counting a view), create, update, delete, close, reopen,
and the caller's own gigs. Boosting is in rest/gig_boost.py, recommendations in rest/recommend.py.

Authorization: gigs are public, so a signed-in caller who is not the gig's owner gets 403 forbidden
(never a 404 that would pretend a visible gig does not exist); creating a gig needs the client role."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

from hub.keys import POOL, SETTINGS
from hub.tokens import Claims
from rest.errors import ApiError
from rest.gig_search import (
    ATTACHMENT_SCHEMA,
    BUDGET_TYPES,
    CATEGORIES,
    GIG_COLUMNS,
    GIG_SCHEMA,
    MAX_MONEY,
    STORABLE,
    gig_json,
    list_parameters,
    list_query,
    search_gigs,
)
from rest.http import Fields, bearer_claims, ok, path_uuid, read_json, require_user
from rest.openapi import (
    BEARER,
    deleted_item,
    envelope,
    errors,
    json_body,
    json_response,
    list_envelope,
    path_id,
)

if TYPE_CHECKING:
    from hub.db import Conn

routes = web.RouteTableDef()

EDITABLE_STATUSES = ("open", "closed")  # a gig with an accepted application is no longer edited
MAX_DEADLINE_MS = 5 * 365 * 86400 * 1000  # five years ahead at most
_URL = re.compile(r"https?://[^\s\x00]{1,2040}")
_FIELDS = {
    "title": "title",
    "description": "description",
    "category": "category",
    "skills": "skills",
    "budgetType": "budget_type",
    "budgetMin": "budget_min",
    "budgetMax": "budget_max",
    "deadline": "deadline",
    "attachments": "attachments",
}


def _attachments(f: Fields) -> list[dict[str, Any]] | None:
    value = f.source.get("attachments")
    if value is None:
        return None
    good = isinstance(value, list) and len(value) <= 10
    cleaned: list[dict[str, Any]] = []
    for item in value if good else []:
        if not isinstance(item, dict) or set(item) - {"url", "name", "mime", "size"}:
            good = False
            break
        url, name, mime, size = (item.get(k) for k in ("url", "name", "mime", "size"))
        good = (
            isinstance(url, str)
            and _URL.fullmatch(url) is not None
            and (name is None or (isinstance(name, str) and len(name) <= 200 and "\x00" not in name))
            and (mime is None or (isinstance(mime, str) and len(mime) <= 100 and "\x00" not in mime))
            and (size is None or (isinstance(size, int) and not isinstance(size, bool) and size >= 0))
        )
        if not good:
            break
        cleaned.append({k: v for k, v in item.items() if v is not None})
    if not good:
        f.errors["attachments"] = "must be at most 10 objects {url (http/https), name?, mime?, size?}"
        return None
    return cleaned


def gig_fields(body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """Validate a create (partial=False) or PATCH (partial=True) body; return column -> value of the
    fields given. ApiError bad_request naming every bad field."""
    f = Fields(body)
    f.unknown(_FIELDS)
    req = not partial
    now_ms = int(time.time() * 1000)
    values: dict[str, Any] = {
        "title": f.text("title", required=req, min_len=3, max_len=200, pattern=STORABLE),
        "description": f.text("description", required=req, max_len=10000, pattern=STORABLE),
        "category": f.text("category", required=req, choices=CATEGORIES),
        "skills": f.text_list("skills", required=False, max_items=20, max_len=50),
        "budget_type": f.text("budgetType", required=False, choices=BUDGET_TYPES),
        "budget_min": f.integer("budgetMin", required=req, low=1, high=MAX_MONEY),
        "budget_max": f.integer("budgetMax", required=req, low=1, high=MAX_MONEY),
        "deadline": f.integer("deadline", required=req, low=now_ms + 1, high=now_ms + MAX_DEADLINE_MS),
        "attachments": _attachments(f),
    }
    skills = values["skills"]
    if skills is not None:
        if any("\x00" in s for s in skills):
            f.errors["skills"] = "must be a list of non-empty strings"
        values["skills"] = list(dict.fromkeys(s.lower() for s in skills))
    lo, hi = values["budget_min"], values["budget_max"]
    if isinstance(lo, int) and isinstance(hi, int) and hi < lo:
        f.errors["budgetMax"] = "must be at least budgetMin"
    if partial and not f.errors and all(v is None for v in values.values()):
        f.errors["body"] = f"give at least one of {', '.join(_FIELDS)}"
    f.check()
    return {k: v for k, v in values.items() if v is not None}


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


@routes.get("/api/gigs")
async def list_gigs(request: web.Request) -> web.Response:
    """Search open gigs (any status with ?status=), boosted ones first; no token needed."""
    bearer_claims(request)  # a token, when sent, must be valid
    q = list_query(request)
    async with request.app[POOL].acquire() as conn:
        items, total = await search_gigs(conn, q)
    return ok(items, page=q.page, limit=q.limit, total=total)


@routes.get("/api/gigs/my-gigs")
async def my_gigs(request: web.Request) -> web.Response:
    """The caller's own gigs, every status unless ?status= is given; same filters as GET /api/gigs."""
    claims = require_user(request)
    q = list_query(request, default_status=None)
    q.client_id = claims.user_id
    async with request.app[POOL].acquire() as conn:
        items, total = await search_gigs(conn, q)
    return ok(items, page=q.page, limit=q.limit, total=total)


@routes.post("/api/gigs")
async def create_gig(request: web.Request) -> web.Response:
    """Post a gig (client role): status open, in the configured currency."""
    claims = require_user(request)
    require_role(claims, "client")
    values = gig_fields(await read_json(request), partial=False)
    values["deadline"] = _timestamp(values["deadline"])
    cols = ["client_id", "currency", *values]
    marks = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    row = await request.app[POOL].fetchrow(
        f"INSERT INTO gigs AS g ({', '.join(cols)}) VALUES ({marks}) RETURNING {GIG_COLUMNS}",
        claims.user_id,
        request.app[SETTINGS].currency,
        *values.values(),
    )
    return ok(gig_json(row), status=201)


@routes.get("/api/gigs/{id}")
async def get_gig(request: web.Request) -> web.Response:
    """One gig; counts a view unless the viewer is its owner. No token needed."""
    claims = bearer_claims(request)
    gig_id = path_uuid(request)
    viewer = claims.user_id if claims else None
    row = await request.app[POOL].fetchrow(
        f"UPDATE gigs g SET views_count = views_count + (client_id IS DISTINCT FROM $2::uuid)::int"
        f" WHERE g.id = $1 RETURNING {GIG_COLUMNS}",
        gig_id,
        viewer,
    )
    if row is None:
        raise ApiError("not_found", f"No gig {gig_id}.")
    return ok(gig_json(row))


@routes.patch("/api/gigs/{id}")
async def update_gig(request: web.Request) -> web.Response:
    """Change some fields of an open or closed gig (owner)."""
    claims = require_user(request)
    gig_id = path_uuid(request)
    values = gig_fields(await read_json(request), partial=True)
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
        sets = ", ".join(f"{col} = ${i}" for i, col in enumerate(values, start=2))
        updated = await conn.fetchrow(
            f"UPDATE gigs g SET {sets}, updated_at = now() WHERE g.id = $1 RETURNING {GIG_COLUMNS}",
            gig_id,
            *values.values(),
        )
    return ok(gig_json(updated))


@routes.delete("/api/gigs/{id}")
async def delete_gig(request: web.Request) -> web.Response:
    """Delete a gig and its applications (owner); 409 once an order exists for it."""
    claims = require_user(request)
    gig_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await owned_gig(conn, gig_id, claims.user_id)
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM orders WHERE gig_id = $1)", gig_id):
            raise ApiError(
                "conflict", "This gig has an order and cannot be deleted; cancel the order instead."
            )
        await conn.execute("DELETE FROM gigs WHERE id = $1", gig_id)
    return ok({"id": gig_id, "deleted": True})


async def _move(request: web.Request, from_status: str, to_status: str, verb: str) -> web.Response:
    claims = require_user(request)
    gig_id = path_uuid(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await owned_gig(conn, gig_id, claims.user_id)
        if row["status"] != from_status:
            raise ApiError(
                "conflict", f"Only a {from_status} gig can be {verb}; this one is {row['status']}."
            )
        moved = await conn.fetchrow(
            f"UPDATE gigs g SET status = $2, updated_at = now() WHERE g.id = $1 RETURNING {GIG_COLUMNS}",
            gig_id,
            to_status,
        )
    return ok(gig_json(moved))


@routes.post("/api/gigs/{id}/close")
async def close_gig(request: web.Request) -> web.Response:
    """Close an open gig to new applications (owner); pending ones stay and may still be accepted."""
    return await _move(request, "open", "closed", "closed")


@routes.post("/api/gigs/{id}/reopen")
async def reopen_gig(request: web.Request) -> web.Response:
    """Reopen a closed gig to applications (owner)."""
    return await _move(request, "closed", "open", "reopened")


def _timestamp(epoch_ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC)


_GIG_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "title": {"type": "string", "minLength": 3, "maxLength": 200},
        "description": {"type": "string", "minLength": 1, "maxLength": 10000},
        "category": {"type": "string", "enum": list(CATEGORIES)},
        "skills": {
            "type": "array",
            "maxItems": 20,
            "items": {"type": "string", "minLength": 1, "maxLength": 50},
        },
        "budgetType": {"type": "string", "enum": list(BUDGET_TYPES), "default": "fixed"},
        "budgetMin": {"type": "integer", "minimum": 1, "maximum": MAX_MONEY, "description": "paise"},
        "budgetMax": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_MONEY,
            "description": "paise, >= budgetMin",
        },
        "deadline": {"type": "integer", "description": "epoch milliseconds, in the future (within 5 years)"},
        "attachments": {"type": "array", "maxItems": 10, "items": ATTACHMENT_SCHEMA},
    },
}
_ONE_GIG = json_response(envelope(GIG_SCHEMA))
_TAGS = ["gigs"]
_OWNER = "Owner only: others get 403."
OPENAPI: dict[str, dict[str, dict[str, Any]]] = {
    "/api/gigs": {
        "get": {
            "summary": "List and search gigs (boosted first); no token needed",
            "tags": _TAGS,
            "parameters": list_parameters(),
            "responses": {"200": json_response(list_envelope(GIG_SCHEMA)), **errors(400, 401)},
        },
        "post": {
            "summary": "Post a gig (client role)",
            "tags": _TAGS,
            "security": BEARER,
            "requestBody": json_body(
                {
                    **_GIG_INPUT,
                    "required": ["title", "description", "category", "budgetMin", "budgetMax", "deadline"],
                }
            ),
            "responses": {"201": json_response(envelope(GIG_SCHEMA), "created"), **errors(400, 401, 403)},
        },
    },
    "/api/gigs/my-gigs": {
        "get": {
            "summary": "The caller's own gigs (every status unless status is given)",
            "tags": _TAGS,
            "security": BEARER,
            "parameters": list_parameters(),
            "responses": {"200": json_response(list_envelope(GIG_SCHEMA)), **errors(400, 401)},
        }
    },
    "/api/gigs/{id}": {
        "get": {
            "summary": "One gig; counts a view unless the viewer owns it; no token needed",
            "tags": _TAGS,
            "parameters": [path_id(description="the gig's id")],
            "responses": {"200": _ONE_GIG, **errors(401, 404)},
        },
        "patch": {
            "summary": "Change an open or closed gig",
            "description": _OWNER,
            "tags": _TAGS,
            "security": BEARER,
            "parameters": [path_id(description="the gig's id")],
            "requestBody": json_body({**_GIG_INPUT, "minProperties": 1}),
            "responses": {"200": _ONE_GIG, **errors(400, 401, 403, 404, 409)},
        },
        "delete": {
            "summary": "Delete a gig and its applications; refused once an order exists",
            "description": _OWNER,
            "tags": _TAGS,
            "security": BEARER,
            "parameters": [path_id(description="the gig's id")],
            "responses": {
                "200": json_response(envelope(deleted_item())),
                **errors(401, 403, 404, 409),
            },
        },
    },
    "/api/gigs/{id}/close": {
        "post": {
            "summary": "Close an open gig to new applications",
            "description": _OWNER,
            "tags": _TAGS,
            "security": BEARER,
            "parameters": [path_id(description="the gig's id")],
            "responses": {"200": _ONE_GIG, **errors(401, 403, 404, 409)},
        }
    },
    "/api/gigs/{id}/reopen": {
        "post": {
            "summary": "Reopen a closed gig",
            "description": _OWNER,
            "tags": _TAGS,
            "security": BEARER,
            "parameters": [path_id(description="the gig's id")],
            "responses": {"200": _ONE_GIG, **errors(401, 403, 404, 409)},
        }
    },
}
