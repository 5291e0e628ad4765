"""/api/auth/send-otp and /api/auth/verify-otp: log in (and sign up) with a code sent to the phone.

A code is 6 digits, valid 5 minutes, single use, and dies after 5 wrong tries; a new send replaces
the phone's previous code. Sends are throttled per phone (1 per 30 s, 5 per hour) and per client IP
(OTP_SENDS_PER_IP per hour) in the Store, so every process shares the counts. Refresh and logout
live in rest/refresh.py."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Literal

import msgspec
from aiohttp import web

from domain import trust
from hub.keys import POOL, SETTINGS, TOKENS
from rest.api import Body, Routes, Wire, load, ok
from rest.errors import ApiError
from rest.http import BANNED
from rest.otp import (
    OtpSendError,
    hash_code,
    judge_phone_code,
    mark_phone_code_used,
    new_code,
    sender_for,
)
from rest.ratelimit import throttle_code_sends
from rest.refresh import Tokens, issue_refresh, session_response
from rest.users import USER_COLUMNS, Phone, User

log = logging.getLogger("gigwire.auth")
routes = Routes("auth")

OTP_TTL_S = 300
RESEND_GAP_S = 30
SENDS_PER_PHONE_HOUR = 5


class SendOtp(Body):
    """POST /api/auth/send-otp: the phone in E.164 form (+ and 8 to 15 digits)."""

    unpadded = frozenset({"phone"})

    phone: Phone


class VerifyOtp(Body):
    """POST /api/auth/verify-otp: the phone and the 6-digit code sent to it."""

    unpadded = frozenset({"phone", "otp"})

    phone: Phone
    otp: Annotated[str, msgspec.Meta(pattern="^[0-9]{6}$")]


class OtpSent(Wire):
    """A code is on its way to `phone`."""

    phone: Phone
    expires_in: Annotated[int, msgspec.Meta(description="seconds the code is valid")]
    resend_after: Annotated[int, msgspec.Meta(description="seconds before another send")]


class Session(Tokens):
    """A login: the tokens of a new session and its user."""

    user: User
    is_new_user: Annotated[bool, msgspec.Meta(description="this login created the user")]


async def _throttle(request: web.Request, phone: str) -> None:
    """Count this send against the IP's and the phone's windows; rate_limited when over one."""
    await throttle_code_sends(
        request,
        [
            (f"otp:gap:{phone}", RESEND_GAP_S, 1, f"to this phone in the last {RESEND_GAP_S} s"),
            (f"otp:hour:{phone}", 3600, SENDS_PER_PHONE_HOUR, "to this phone this hour"),
        ],
    )


@routes.post(
    "/api/auth/send-otp",
    summary="Send a login code to a phone",
    description="The code (6 digits, valid 5 minutes, 5 tries) goes to the phone, never into the answer."
    " A new send replaces the previous code. message and expiresIn are also at the top level of the"
    " body, as seeds/004 shows them. 429 for too many sends: 1 per 30 s and 5 an hour per phone,"
    " OTP_SENDS_PER_IP an hour per IP. 502 when the SMS bridge refused the code.",
    body=SendOtp,
    response=OtpSent,
    meta={"message": Literal["OTP sent"], "expiresIn": int},
    errors=(502,),
)
async def send_otp(request: web.Request, body: SendOtp) -> web.Response:
    """Make a code for the phone, store its hash, and hand it to the OtpSender. The answer never
    contains the code."""
    settings = request.app[SETTINGS]
    phone = body.phone
    await _throttle(request, phone)
    code = new_code()
    digest = hash_code(settings, phone, code)
    pool = request.app[POOL]
    await pool.execute(
        "INSERT INTO otp_codes (phone, code_hash, expires_at)"
        " VALUES ($1, $2, now() + make_interval(secs => $3))"
        " ON CONFLICT (phone) DO UPDATE SET code_hash = EXCLUDED.code_hash, attempts = 0,"
        " created_at = now(), expires_at = EXCLUDED.expires_at, used_at = NULL",
        phone,
        digest,
        float(OTP_TTL_S),
    )
    try:
        await sender_for(request.app, settings).send(phone, code)
    except OtpSendError as exc:
        await pool.execute("DELETE FROM otp_codes WHERE phone = $1 AND code_hash = $2", phone, digest)
        log.error("OTP not sent", extra={"phone": phone, "error": str(exc)})
        raise ApiError("bad_gateway", "The code could not be sent just now; try again in a minute.") from None
    data = OtpSent(phone=phone, expires_in=OTP_TTL_S, resend_after=RESEND_GAP_S)
    return ok(data, message="OTP sent", expiresIn=OTP_TTL_S)


_FAILURES = {
    "no_code": "No code was sent to this phone; request one with POST /api/auth/send-otp.",
    "used": "This code was already used; request a new one with POST /api/auth/send-otp.",
    "expired": "This code has expired; request a new one with POST /api/auth/send-otp.",
    "too_many_attempts": "Too many wrong tries for this code; "
    "request a new one with POST /api/auth/send-otp.",
}


@routes.post(
    "/api/auth/verify-otp",
    summary="Log in (and sign up) with the code",
    description="401 when the code is wrong, expired, used, dead after 5 wrong tries, or none was sent"
    " (details.reason: wrong_code with attemptsLeft, expired, used, too_many_attempts, no_code)."
    " Request a new code unless attemptsLeft > 0. The refresh token is also set as the refreshToken"
    " cookie. 403 (details.reason: banned) for a banned user's phone; the code stays unused.",
    body=VerifyOtp,
    response=Session,
    errors=(401, 403),
)
async def verify_otp(request: web.Request, body: VerifyOtp) -> web.Response:
    """Check the phone's code; on success create the user if new, start a session, and answer the
    access token, refresh token (also as cookie), user and isNewUser."""
    settings = request.app[SETTINGS]
    phone, otp = body.phone, body.otp
    reason = ""
    left = 0
    user = None
    refresh = ""
    family: uuid.UUID | None = None
    trusted: trust.Trust | None = None
    async with request.app[POOL].acquire() as conn, conn.transaction():
        reason, left = await judge_phone_code(conn, settings, phone, otp)
        if reason:
            pass
        elif await conn.fetchval("SELECT banned_at IS NOT NULL FROM users WHERE phone = $1", phone):
            raise ApiError("forbidden", BANNED, details={"reason": "banned"})
        else:
            await mark_phone_code_used(conn, phone)
            user = await conn.fetchrow(
                "INSERT INTO users (phone, phone_verified) VALUES ($1, true) ON CONFLICT (phone) DO UPDATE"
                " SET phone_verified = true, last_active_at = now()"
                f" RETURNING {USER_COLUMNS}, (xmax = 0) AS inserted",
                phone,
            )
            assert user is not None
            # A verified phone is an input of the trust rule: the score follows in this transaction.
            trusted = await trust.recompute(conn, str(user["id"]))
            # No cleanup of the user's old refresh tokens here: a rotated one of a family still in
            # use must stay for reuse detection. Housekeeping deletes whole dead families.
            family = uuid.uuid4()
            refresh = await issue_refresh(conn, settings, user["id"], family)
    if reason == "wrong_code":
        message = (
            f"Wrong code; {left} tr{'y' if left == 1 else 'ies'} left."
            if left
            else "Wrong code, and no tries are left; request a new one with POST /api/auth/send-otp."
        )
        raise ApiError("unauthorized", message, details={"reason": reason, "attemptsLeft": left})
    if reason:
        raise ApiError("unauthorized", _FAILURES[reason], details={"reason": reason})
    assert user is not None and family is not None
    access = request.app[TOKENS].issue(str(user["id"]), list(user["roles"]), family=str(family))
    data = Session(
        token=access,
        refresh_token=refresh,
        expires_in=settings.access_token_ttl,
        user=load(User, user, **({"trustScore": trusted.score, "badges": trusted.badges} if trusted else {})),
        is_new_user=bool(user["inserted"]),
    )
    return session_response(data, settings, refresh)
