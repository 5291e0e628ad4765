"""What an account needs before it may act: a complete profile to post a gig, apply or withdraw, and a
verified phone before money moves (paying an order, opening one, withdrawing).

`require_account` reads the caller's row FOR KEY SHARE inside the caller's transaction: an account
deletion (which locks the row FOR UPDATE) either commits first, and the erased profile is refused
here, or waits until this transaction is done, and then sees what it made."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest.errors import ApiError
from rest.users import PROFILE_FIELDS

if TYPE_CHECKING:
    from hub.db import Conn

# Column -> the field's name in the API.
WIRE_NAMES = {"email": "email", "name": "name", "university": "university", "course": "course",
              "graduation_year": "graduationYear"}  # fmt: skip
assert set(WIRE_NAMES) == set(PROFILE_FIELDS)


async def require_account(conn: Conn, user_id: str, *, profile: bool = True, phone: bool = False) -> None:
    """Refuse unless the caller's account is complete enough for what they are doing:
    422 unprocessable with details {reason: profile_incomplete, missing: [wire names]} when a
    profile field is missing (`profile`), 403 forbidden with details {reason: phone_unverified} when
    the phone is not verified (`phone`), 401 when the account is gone or deleted."""
    cols = ", ".join(PROFILE_FIELDS)
    row = await conn.fetchrow(
        f"SELECT {cols}, phone, phone_verified, deleted_at FROM users WHERE id = $1 FOR KEY SHARE", user_id
    )
    if row is None or row["deleted_at"] is not None:
        raise ApiError(
            "unauthorized",
            "The user of this access token no longer exists; log in again.",
            details={"reason": "user_gone"},
        )
    if profile:
        missing = [WIRE_NAMES[c] for c in PROFILE_FIELDS if row[c] is None]
        if missing:
            raise ApiError(
                "unprocessable",
                f"Complete your profile first (PATCH /api/users/me): {', '.join(missing)} missing.",
                details={"reason": "profile_incomplete", "missing": missing},
            )
    if phone and (row["phone"] is None or not row["phone_verified"]):
        raise ApiError(
            "forbidden",
            "Verify a phone number first (POST /api/users/me/phone/send-code, then"
            " POST /api/users/me/phone/verify): money moves only for a verified phone.",
            details={"reason": "phone_unverified"},
        )
