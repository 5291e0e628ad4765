"""/api/users/me: the caller's own profile; `user_json` renders a users row for every module."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
from aiohttp import web

from hub.clock import epoch_ms
from hub.keys import POOL
from rest.errors import ApiError
from rest.http import Fields, ok, read_json, require_user
from rest.openapi import ERROR_REF, envelope

routes = web.RouteTableDef()

# Never in an email or URL: whitespace and control characters. The OpenAPI patterns are these same
# expressions (valid in both Python and ECMA-262), so the documented schema and the check agree.
_NO = r"\s\x00-\x1f\x7f-\x9f\ufeff"
EMAIL = re.compile(rf"[^@{_NO}]+@[^@{_NO}]+\.[^@{_NO}]+")
URL = re.compile(rf"https?://[^/?#{_NO}]+(?:[/?#][^{_NO}]*)?")
# A text with something other than what str.strip() removes (JSON Schema's \S is narrower), and
# no NUL, which PostgreSQL text cannot hold.
NOT_BLANK = r"^[^\x00]*[^\s\x00\x1c-\x1f\x85][^\x00]*$"
NO_NUL = r"^[^\x00]*$"
# The fields a profile needs before its owner can post gigs or apply (0001_core.sql).
PROFILE_FIELDS = ("email", "name", "university", "course", "graduation_year")

# camelCase field -> column, for the fields the user edits.
EDITABLE = {
    "name": "name",
    "email": "email",
    "avatarUrl": "avatar_url",
    "bio": "bio",
    "university": "university",
    "course": "course",
    "year": "year",
    "graduationYear": "graduation_year",
    "roles": "roles",
    "idDocumentUrl": "id_document_url",
}
CLEARABLE = {"avatarUrl", "bio", "idDocumentUrl"}
# Fields of the user JSON the user cannot set, and why.
READ_ONLY = {
    "id": "is assigned by the server",
    "phone": "is your login; log in with the other phone number instead",
    "phoneVerified": "is set by verification, not by you",
    "emailVerified": "is set by verification, not by you",
    "idVerified": "is set by verification, not by you",
    "rating": "is computed from reviews",
    "totalEarnings": "is kept by the ledger",
    "completedGigs": "is kept by the platform",
    "trustScore": "is kept by the platform",
    "badges": "are awarded by the platform",
    "bankAccountId": "is set by adding a bank account (POST /api/bank-accounts)",
    "walletBalance": "is kept by the ledger",
    "pendingBalance": "is kept by the ledger",
    "currency": "is set by the platform",
    "createdAt": "is set by the server",
    "lastActiveAt": "is set by the server",
    "profileComplete": "is computed from the other fields",
}


_NULLABLE_TEXT = {"type": ["string", "null"]}
USER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A user; times in epoch milliseconds, money in paise of `currency`.",
    "required": [
        "id",
        "phone",
        "email",
        "name",
        "avatarUrl",
        "bio",
        "university",
        "course",
        "year",
        "graduationYear",
        "phoneVerified",
        "emailVerified",
        "idVerified",
        "idDocumentUrl",
        "roles",
        "rating",
        "totalEarnings",
        "completedGigs",
        "trustScore",
        "badges",
        "bankAccountId",
        "walletBalance",
        "pendingBalance",
        "currency",
        "createdAt",
        "lastActiveAt",
        "profileComplete",
    ],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "phone": {"type": "string", "pattern": r"^\+[1-9][0-9]{7,14}$"},
        "email": _NULLABLE_TEXT,
        "name": _NULLABLE_TEXT,
        "avatarUrl": _NULLABLE_TEXT,
        "bio": _NULLABLE_TEXT,
        "university": _NULLABLE_TEXT,
        "course": _NULLABLE_TEXT,
        "year": {"type": ["integer", "null"], "minimum": 1, "maximum": 5},
        "graduationYear": {"type": ["integer", "null"]},
        "phoneVerified": {"type": "boolean"},
        "emailVerified": {"type": "boolean"},
        "idVerified": {"type": "boolean"},
        "idDocumentUrl": _NULLABLE_TEXT,
        "roles": {"type": "array", "minItems": 1, "items": {"enum": ["doer", "client", "admin"]}},
        "rating": {"type": "number", "minimum": 0, "maximum": 5},
        "totalEarnings": {"type": "integer", "minimum": 0},
        "completedGigs": {"type": "integer", "minimum": 0},
        "trustScore": {"type": "integer", "minimum": 0, "maximum": 100},
        "badges": {"type": "array", "items": {"type": "string"}},
        "bankAccountId": {"type": ["string", "null"], "format": "uuid"},
        "walletBalance": {"type": "integer", "minimum": 0},
        "pendingBalance": {"type": "integer", "minimum": 0},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "createdAt": {"type": "integer"},
        "lastActiveAt": {"type": "integer"},
        "profileComplete": {
            "type": "boolean",
            "description": "email, name, university, course and graduationYear are all set",
        },
    },
}
"""JSON Schema of `user_json`'s output."""

_RATE_HEADERS = {
    "X-RateLimit-Limit": {"schema": {"type": "integer"}, "description": "requests allowed a minute"},
    "X-RateLimit-Remaining": {"schema": {"type": "integer"}, "description": "requests left this minute"},
    "X-RateLimit-Reset": {"schema": {"type": "integer"}, "description": "seconds until the window resets"},
}


def operation(
    summary: str,
    tag: str,
    data: dict[str, Any],
    errors: Mapping[str, str],
    *,
    auth: bool = False,
    body: dict[str, Any] | None = None,
    description: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An OpenAPI operation answering `{"success": true, "data": <data>, **meta}` with 200, the
    error envelope for each status of `errors` (status -> when), and 429 from the rate limiter."""
    responses: dict[str, Any] = {
        "200": {
            "description": "Done.",
            "headers": _RATE_HEADERS,
            "content": {"application/json": {"schema": envelope(data, dict(meta or {}))}},
        }
    }
    all_errors = {"429": "Over the request rate limit; retry after Retry-After seconds.", **errors}
    for status, when in sorted(all_errors.items()):
        responses[status] = {"description": when, "content": {"application/json": {"schema": ERROR_REF}}}
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if description:
        op["description"] = description
    if auth:
        op["security"] = [{"bearerAuth": []}]
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def user_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A `users` row (all columns) as the API's camelCase user object; times in epoch ms, money in
    paise, optional fields null when unset, plus `profileComplete`."""
    return {
        "id": str(row["id"]),
        "phone": row["phone"],
        "email": row["email"],
        "name": row["name"],
        "avatarUrl": row["avatar_url"],
        "bio": row["bio"],
        "university": row["university"],
        "course": row["course"],
        "year": row["year"],
        "graduationYear": row["graduation_year"],
        "phoneVerified": row["phone_verified"],
        "emailVerified": row["email_verified"],
        "idVerified": row["id_verified"],
        "idDocumentUrl": row["id_document_url"],
        "roles": list(row["roles"]),
        "rating": float(row["rating"]),
        "totalEarnings": row["total_earnings"],
        "completedGigs": row["completed_gigs"],
        "trustScore": row["trust_score"],
        "badges": list(row["badges"]),
        "bankAccountId": None if row["bank_account_id"] is None else str(row["bank_account_id"]),
        "walletBalance": row["wallet_balance"],
        "pendingBalance": row["pending_balance"],
        "currency": row["currency"],
        "createdAt": epoch_ms(row["created_at"]),
        "lastActiveAt": epoch_ms(row["last_active_at"]),
        "profileComplete": all(row[c] is not None for c in PROFILE_FIELDS),
    }


def _user_id(request: web.Request) -> uuid.UUID:
    claims = require_user(request)
    try:
        return uuid.UUID(claims.user_id)
    except ValueError:
        raise ApiError("unauthorized", "The access token names no user; log in again.") from None


def _no_user() -> ApiError:
    return ApiError("unauthorized", "The user of this access token no longer exists; log in again.")


@routes.get("/api/users/me")
async def get_me(request: web.Request) -> web.Response:
    """The caller's profile."""
    user_id = _user_id(request)
    row = await request.app[POOL].fetchrow("SELECT * FROM users WHERE id = $1", user_id)
    if row is None:
        raise _no_user()
    return ok(user_json(row))


def _url(fields: Fields, name: str, value: str | None) -> None:
    if value is not None and name not in fields.errors and not URL.fullmatch(value):
        fields.errors[name] = "must be an http:// or https:// URL"


def untrimmed(fields: Fields, body: Mapping[str, Any], *names: str) -> None:
    """Refuse strings with spaces around them for fields whose format allows none (Fields.text
    would strip them silently, and the documented pattern refuses them)."""
    for name in names:
        raw = body.get(name)
        if isinstance(raw, str) and raw != raw.strip():
            fields.errors[name] = "must not start or end with spaces"


def no_nul(fields: Fields, body: Mapping[str, Any], *names: str) -> None:
    """Refuse strings holding NUL characters, which PostgreSQL text cannot store."""
    for name in names:
        raw = body.get(name)
        if isinstance(raw, str) and "\x00" in raw and name not in fields.errors:
            fields.errors[name] = "must not contain NUL characters"


def _read_patch(body: Mapping[str, Any]) -> dict[str, Any]:
    """The validated changes (camelCase name -> value, None meaning clear), or bad_request."""
    # JSON has one number type: 2028.0 is the integer 2028.
    body = {
        k: int(v) if k in ("year", "graduationYear") and isinstance(v, float) and v.is_integer() else v
        for k, v in body.items()
    }
    fields = Fields(body)
    for name in body:
        if name in READ_ONLY:
            fields.errors[name] = f"cannot be changed: it {READ_ONLY[name]}"
        elif body[name] is None and name in EDITABLE and name not in CLEARABLE:
            fields.errors[name] = "cannot be cleared; send a value"
    fields.unknown([*EDITABLE, *READ_ONLY])
    values: dict[str, Any] = {
        "name": fields.text("name", required=False, max_len=100),
        "email": fields.text("email", required=False, max_len=254, pattern=EMAIL),
        "avatarUrl": fields.text("avatarUrl", required=False, max_len=2048),
        "bio": fields.text("bio", required=False, min_len=0, max_len=500),
        "university": fields.text("university", required=False, max_len=200),
        "course": fields.text("course", required=False, max_len=200),
        "year": fields.integer("year", required=False, low=1, high=5),
        "graduationYear": fields.integer("graduationYear", required=False, low=1950, high=2100),
        "roles": fields.text_list(
            "roles", required=False, min_items=1, max_items=3, choices=("doer", "client", "admin")
        ),
        "idDocumentUrl": fields.text("idDocumentUrl", required=False, max_len=2048),
    }
    _url(fields, "avatarUrl", values["avatarUrl"])
    _url(fields, "idDocumentUrl", values["idDocumentUrl"])
    untrimmed(fields, body, "email", "avatarUrl", "idDocumentUrl")
    no_nul(fields, body, "name", "bio", "university", "course")
    if not body:
        fields.errors["body"] = "send at least one field to change"
    fields.check()
    if values["bio"] == "":
        values["bio"] = None
    return {name: values[name] for name in body}


@routes.patch("/api/users/me")
async def patch_me(request: web.Request) -> web.Response:
    """Change some of the caller's own profile fields; answer the whole updated profile."""
    user_id = _user_id(request)
    changes = _read_patch(await read_json(request))
    async with request.app[POOL].acquire() as conn, conn.transaction():
        current = await conn.fetchrow(
            "SELECT roles, email, id_document_url FROM users WHERE id = $1 FOR UPDATE", user_id
        )
        if current is None:
            raise _no_user()
        if "roles" in changes:
            roles = [r for r in changes["roles"] if r != "admin"]
            if "admin" in changes["roles"] and "admin" not in current["roles"]:
                raise ApiError(
                    "forbidden",
                    "The admin role is granted by an operator (python -m hub grant-admin), "
                    "not chosen by the user; send roles among doer and client.",
                )
            if "admin" in current["roles"]:
                roles.append("admin")  # kept: only an operator takes it away
            if not roles:
                raise ApiError("bad_request", "Keep at least one of the roles doer and client.")
            changes["roles"] = roles
        sets = [f"{EDITABLE[name]} = ${i}" for i, name in enumerate(changes, start=2)]
        # A new address or document has not been verified, whatever the old one was.
        if "email" in changes and (changes["email"] or "").lower() != (current["email"] or "").lower():
            sets.append("email_verified = false")
        if "idDocumentUrl" in changes and changes["idDocumentUrl"] != current["id_document_url"]:
            sets.append("id_verified = false")
        sets.append("last_active_at = now()")
        try:
            row = await conn.fetchrow(
                f"UPDATE users SET {', '.join(sets)} WHERE id = $1 RETURNING *", user_id, *changes.values()
            )
        except asyncpg.UniqueViolationError:
            raise ApiError(
                "conflict",
                "This email address belongs to another account; use another one.",
                details={"fields": {"email": "is taken"}},
            ) from None
    assert row is not None
    return ok(user_json(row))


_URL_SCHEMA = {"type": ["string", "null"], "maxLength": 2048, "pattern": f"^{URL.pattern}$"}
_TEXT_SCHEMA = {"type": "string", "minLength": 1, "pattern": NOT_BLANK}

OPENAPI: dict[str, dict[str, dict[str, Any]]] = {
    "/api/users/me": {
        "get": operation(
            "The caller's profile",
            "users",
            USER_SCHEMA,
            {"401": "No valid access token, or its user no longer exists."},
            auth=True,
        ),
        "patch": operation(
            "Change some of the caller's profile fields",
            "users",
            USER_SCHEMA,
            {
                "400": "A field is unknown, read-only, or invalid (details.fields names each), "
                "or none was sent.",
                "401": "No valid access token, or its user no longer exists.",
                "403": "The admin role was asked for; only an operator grants it.",
                "409": "The email address belongs to another account.",
            },
            auth=True,
            description=(
                "Send only the fields to change. avatarUrl, bio and idDocumentUrl may be null to clear "
                "them. A changed email resets emailVerified, a changed idDocumentUrl resets idVerified. "
                "roles is a non-empty subset of doer and client; an admin keeps admin. Roles inside "
                "access tokens change at the next refresh."
            ),
            body={
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {
                    "name": {**_TEXT_SCHEMA, "maxLength": 100},
                    "email": {"type": "string", "maxLength": 254, "pattern": f"^{EMAIL.pattern}$"},
                    "avatarUrl": _URL_SCHEMA,
                    "bio": {"type": ["string", "null"], "maxLength": 500, "pattern": NO_NUL},
                    "university": {**_TEXT_SCHEMA, "maxLength": 200},
                    "course": {**_TEXT_SCHEMA, "maxLength": 200},
                    "year": {"type": "integer", "minimum": 1, "maximum": 5},
                    "graduationYear": {"type": "integer", "minimum": 1950, "maximum": 2100},
                    "roles": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "enum": ["doer", "client"]},
                    },
                    "idDocumentUrl": _URL_SCHEMA,
                },
            },
        ),
    }
}
