"""/api/users/me: the caller's own profile. `User` is the user shape every module answers: `load` it
from a row selected with USER_COLUMNS."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import asyncpg
import msgspec
from aiohttp import web
from msgspec import UNSET, UnsetType

from domain import trust
from hub.keys import POOL
from hub.model import EpochMs, Uuid
from rest.api import Body, FieldErrors, Routes, Wire, load, ok
from rest.errors import ApiError
from rest.http import require_user

routes = Routes("users")

# Never in an email or URL: whitespace and control characters. The documented patterns are these same
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
# Every column of a users row, and profile_complete.
USER_COLUMNS = "*, (" + " AND ".join(f"{c} IS NOT NULL" for c in PROFILE_FIELDS) + ") AS profile_complete"

Role = Literal["doer", "client", "admin"]
Phone = Annotated[str, msgspec.Meta(pattern=r"^\+[1-9][0-9]{7,14}$", examples=["+919876543210"])]
Count = Annotated[int, msgspec.Meta(ge=0)]
Money = Annotated[int, msgspec.Meta(ge=0, description="paise")]


class User(Wire):
    """A user; times in epoch milliseconds, money in paise of `currency`. phone is null for a user
    who signed in with Google and has not verified a phone yet."""

    id: Uuid
    phone: Phone | None
    email: str | None
    name: str | None
    avatar_url: str | None
    bio: str | None
    university: str | None
    course: str | None
    year: Annotated[int, msgspec.Meta(ge=1, le=5)] | None
    graduation_year: int | None
    phone_verified: bool
    email_verified: bool
    id_verified: bool
    id_document_url: str | None
    roles: Annotated[list[Role], msgspec.Meta(min_length=1)]
    rating: Annotated[float, msgspec.Meta(ge=0, le=5)]
    total_earnings: Money
    completed_gigs: Count
    trust_score: Annotated[int, msgspec.Meta(ge=0, le=100)]
    badges: list[str]
    bank_account_id: Uuid | None
    wallet_balance: Money
    pending_balance: Money
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
    created_at: EpochMs
    last_active_at: EpochMs
    profile_complete: Annotated[
        bool, msgspec.Meta(description="email, name, university, course and graduationYear are all set")
    ]


# Fields of User the user cannot set, and why.
READ_ONLY = {
    "id": "is assigned by the server",
    "phone": "is your login; log in with the other phone number instead (an account without a verified"
    " phone adds one with POST /api/users/me/phone/send-code)",
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

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NOT_BLANK)]
Url = Annotated[str, msgspec.Meta(max_length=2048, pattern=f"^{URL.pattern}$")]


class UserPatch(Body):
    """PATCH /api/users/me: only the fields to change, at least one. avatarUrl, bio and idDocumentUrl
    may be null to clear them (bio also by ""); the others cannot be cleared."""

    unpadded = frozenset({"email", "avatarUrl", "idDocumentUrl"})
    whole_floats = frozenset({"year", "graduationYear"})
    unknown_reasons: ClassVar[Mapping[str, str]] = {
        name: f"cannot be changed: it {why}" for name, why in READ_ONLY.items()
    }

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NOT_BLANK)] | UnsetType = UNSET
    email: Annotated[str, msgspec.Meta(max_length=254, pattern=f"^{EMAIL.pattern}$")] | UnsetType = UNSET
    avatar_url: Url | UnsetType | None = UNSET
    bio: Annotated[str, msgspec.Meta(max_length=500, pattern=NO_NUL)] | UnsetType | None = UNSET
    university: Text | UnsetType = UNSET
    course: Text | UnsetType = UNSET
    year: Annotated[int, msgspec.Meta(ge=1, le=5)] | UnsetType = UNSET
    graduation_year: Annotated[int, msgspec.Meta(ge=1950, le=2100)] | UnsetType = UNSET
    roles: (
        Annotated[
            list[Role],
            msgspec.Meta(min_length=1, description="doer and/or client; admin is granted by an operator"),
        ]
        | UnsetType
    ) = UNSET
    id_document_url: Url | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        if isinstance(self.roles, list):
            self.roles = list(dict.fromkeys(self.roles))
        if self.bio == "":
            self.bio = None
        if not self.columns():
            raise FieldErrors({"body": "send at least one field to change"})

    def columns(self) -> dict[str, Any]:
        """Column -> new value (None: clear it) of each field sent."""
        return {name: value for name in self.__struct_fields__ if (value := getattr(self, name)) is not UNSET}


def _user_id(request: web.Request) -> uuid.UUID:
    claims = require_user(request)
    try:
        return uuid.UUID(claims.user_id)
    except ValueError:
        raise ApiError("unauthorized", "The access token names no user; log in again.") from None


def _no_user() -> ApiError:
    return ApiError("unauthorized", "The user of this access token no longer exists; log in again.")


_ME_401 = "401 also when the token's user no longer exists."


@routes.get("/api/users/me", summary="The caller's profile", description=_ME_401, auth=True, response=User)
async def get_me(request: web.Request) -> web.Response:
    """The caller's profile."""
    user_id = _user_id(request)
    row = await request.app[POOL].fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", user_id)
    if row is None:
        raise _no_user()
    return ok(load(User, row))


@routes.patch(
    "/api/users/me",
    summary="Change some of the caller's profile fields",
    description="Send only the fields to change. avatarUrl, bio and idDocumentUrl may be null to clear"
    " them. A changed email resets emailVerified, a changed idDocumentUrl resets idVerified. roles is a"
    " non-empty subset of doer and client (admin: 403, only an operator grants it); an admin keeps"
    " admin. Roles inside access tokens change at the next refresh. A field that is unknown, read-only"
    " or invalid is a 400 naming it; an email of another account is a 409. " + _ME_401,
    auth=True,
    body=UserPatch,
    response=User,
    errors=(403, 409),
)
async def patch_me(request: web.Request, body: UserPatch) -> web.Response:
    """Change some of the caller's own profile fields; answer the whole updated profile."""
    user_id = _user_id(request)
    changes = body.columns()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        current = await conn.fetchrow(
            "SELECT roles, email, id_document_url, email_verified, id_verified FROM users WHERE id = $1"
            " FOR NO KEY UPDATE",
            user_id,
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
        sets = [f"{column} = ${i}" for i, column in enumerate(changes, start=2)]
        # A new address or document has not been verified, whatever the old one was.
        unverified = False
        if "email" in changes and (changes["email"] or "").lower() != (current["email"] or "").lower():
            sets.append("email_verified = false")
            unverified = bool(current["email_verified"])
        if "id_document_url" in changes and changes["id_document_url"] != current["id_document_url"]:
            sets.append("id_verified = false")
            unverified = unverified or bool(current["id_verified"])
        sets.append("last_active_at = now()")
        try:
            row = await conn.fetchrow(
                f"UPDATE users SET {', '.join(sets)} WHERE id = $1 RETURNING {USER_COLUMNS}",
                user_id,
                *changes.values(),
            )
            if unverified:  # a verification lost is an input of the trust score
                await trust.recompute(conn, str(user_id))
                row = await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", user_id)
        except asyncpg.UniqueViolationError:
            raise ApiError(
                "conflict",
                "This email address belongs to another account; use another one.",
                details={"fields": {"email": "is taken"}},
            ) from None
    assert row is not None
    return ok(load(User, row))
