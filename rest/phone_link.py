"""/api/users/me/phone/send-code and /verify: an account without a verified phone (a Google sign-in)
proves one with the same 6-digit SMS code as the phone login (rest/auth.py: same store, sender,
lifetime, tries and throttles). Money moves only for a verified phone (rest/account_rules.py).

An account whose phone is already verified keeps it (its login): 409. A phone that is another
account's login is refused when the code is checked (409 phone_taken), never at the send, so the
send does not tell who is registered."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from domain import trust
from hub.keys import POOL, SETTINGS
from rest.api import Routes, load, ok
from rest.auth import _FAILURES, OtpSent, SendOtp, VerifyOtp, send_otp
from rest.errors import ApiError
from rest.http import require_user
from rest.otp import judge_phone_code, mark_phone_code_used
from rest.users import USER_COLUMNS, User

routes = Routes("users")

_VERIFIED = "Your account's phone is already verified; it is your login and stays."


def _taken() -> ApiError:
    return ApiError(
        "conflict",
        "This phone is another account's login; log in with it, or verify another phone.",
        details={"reason": "phone_taken"},
    )


async def _unverified(request: web.Request, user_id: str) -> None:
    verified = await request.app[POOL].fetchval(
        "SELECT phone IS NOT NULL AND phone_verified FROM users WHERE id = $1", user_id
    )
    if verified:
        raise ApiError("conflict", _VERIFIED, details={"reason": "already_verified"})


@routes.post(
    "/api/users/me/phone/send-code",
    summary="Send a code to a phone to verify it as my account's phone",
    description="For an account without a verified phone (e.g. a Google sign-in); 409 (details.reason"
    " already_verified) otherwise. The code and its limits are the login code's (POST"
    " /api/auth/send-otp): 429 for too many sends, 502 when the SMS bridge refused.",
    auth=True,
    body=SendOtp,
    response=OtpSent,
    errors=(409, 502),
)
async def send_phone_code(request: web.Request, body: SendOtp) -> web.StreamResponse:
    """Send the login code to `phone`, for the caller to prove it."""
    claims = require_user(request)
    await _unverified(request, claims.user_id)
    return await send_otp(request, body)


@routes.post(
    "/api/users/me/phone/verify",
    summary="Verify a phone as my account's phone with the code sent to it",
    description="Sets phone and phoneVerified and answers the profile. 422 when the code is wrong,"
    " expired, used, dead or none was sent (details.reason as verify-otp's, attemptsLeft with"
    " wrong_code); 409 when the account's phone is already verified (already_verified) or the phone"
    " is another account's login (phone_taken).",
    auth=True,
    body=VerifyOtp,
    response=User,
    errors=(409, 422),
)
async def verify_phone(request: web.Request, body: VerifyOtp) -> web.Response:
    """Check the phone's code; on success it becomes the caller's verified phone."""
    claims = require_user(request)
    settings = request.app[SETTINGS]
    phone = body.phone
    reason, left, user = "", 0, None
    async with request.app[POOL].acquire() as conn, conn.transaction():
        me = await conn.fetchrow(
            "SELECT phone IS NOT NULL AND phone_verified AS verified FROM users WHERE id = $1 FOR UPDATE",
            claims.user_id,
        )
        if me is None or me["verified"]:
            raise ApiError("conflict", _VERIFIED, details={"reason": "already_verified"})
        reason, left = await judge_phone_code(conn, settings, phone, body.otp)
        if reason:
            pass
        elif await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM users WHERE phone = $1 AND id <> $2)", phone, claims.user_id
        ):
            reason = "phone_taken"
        else:
            await mark_phone_code_used(conn, phone)
            try:
                await conn.execute(
                    "UPDATE users SET phone = $2, phone_verified = true, last_active_at = now()"
                    " WHERE id = $1",
                    claims.user_id,
                    phone,
                )
            except asyncpg.UniqueViolationError:  # an account made with this phone since the check
                raise _taken() from None
            # A verified phone is an input of the trust rule: the score follows in this transaction.
            await trust.recompute(conn, claims.user_id)
            user = await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", claims.user_id)
    if reason == "phone_taken":
        raise _taken()
    if reason == "wrong_code":
        raise ApiError(
            "unprocessable",
            f"Wrong code; {left} tries left.",
            details={"reason": reason, "attemptsLeft": left},
        )
    if reason:
        message = _FAILURES[reason].replace("/api/auth/send-otp", "/api/users/me/phone/send-code")
        raise ApiError("unprocessable", message, details={"reason": reason})
    assert user is not None
    return ok(load(User, user))
