"""/api/users/me/email/send-code and /verify: prove the profile's email address with a one-time
code sent there (rest/email_sender.py), which sets emailVerified (and recomputes the trust score,
domain/trust.py, in the same transaction).

A code is 6 digits, valid 15 minutes, single use, dies after 5 wrong tries, and proves only the
address it was sent to: changing the email (PATCH /api/users/me, which also resets emailVerified)
makes it useless. A new send replaces the previous code. Sends are throttled like login codes: per
user 1 per 30 s and 5 an hour, per client IP OTP_SENDS_PER_IP an hour, counted in the Store."""

from __future__ import annotations

import logging
from typing import Annotated

import msgspec
from aiohttp import web

from domain import trust
from hub.keys import POOL, SETTINGS
from rest import otp
from rest.api import Body, Routes, Wire, load, ok
from rest.email_sender import EmailSendError, email_sender_for
from rest.errors import ApiError
from rest.http import require_user
from rest.otp import code_matches, hash_code, new_code
from rest.ratelimit import throttle_code_sends
from rest.users import USER_COLUMNS, User

log = logging.getLogger("gigwire.email")
routes = Routes("users")

CODE_TTL_S = 900
RESEND_GAP_S = 30
SENDS_PER_USER_HOUR = 5
MAX_WRONG_TRIES = otp.MAX_WRONG_TRIES  # as login codes


class EmailCodeSent(Wire):
    """A code is on its way to `email`."""

    email: str
    expires_in: Annotated[int, msgspec.Meta(description="seconds the code is valid")]
    resend_after: Annotated[int, msgspec.Meta(description="seconds before another send")]


class EmailCode(Body):
    """POST /api/users/me/email/verify: the 6-digit code sent to the profile's email."""

    unpadded = frozenset({"code"})

    code: Annotated[str, msgspec.Meta(pattern="^[0-9]{6}$")]


def _subject(user_id: str, email: str) -> str:
    # The code's hash binds user and address: a code sent to one address proves nothing else.
    return f"email:{user_id}:{email.lower()}"


async def _throttle(request: web.Request, user_id: str) -> None:
    await throttle_code_sends(
        request,
        [
            (f"email:gap:{user_id}", RESEND_GAP_S, 1, f"to you in the last {RESEND_GAP_S} s"),
            (f"email:hour:{user_id}", 3600, SENDS_PER_USER_HOUR, "to you this hour"),
        ],
    )


@routes.post(
    "/api/users/me/email/send-code",
    summary="Send a code to my profile's email address to verify it",
    description="The code (6 digits, valid 15 minutes, 5 tries) goes to the address, never into the"
    " answer; a new send replaces the previous code. 409 when the address is already verified"
    " (details.reason already_verified); 422 when the profile has no email (details.reason no_email)."
    " 429 for too many sends: 1 per 30 s and 5 an hour per user, OTP_SENDS_PER_IP an hour per IP."
    " 502 when the email bridge refused the code.",
    auth=True,
    response=EmailCodeSent,
    errors=(409, 422, 502),
)
async def send_code(request: web.Request) -> web.Response:
    """Make a code for the profile's email, store its hash, hand it to the EmailSender."""
    claims = require_user(request)
    settings = request.app[SETTINGS]
    pool = request.app[POOL]
    row = await pool.fetchrow("SELECT email, email_verified FROM users WHERE id = $1", claims.user_id)
    if row is None:
        raise ApiError("unauthorized", "The user of this access token no longer exists; log in again.")
    email = row["email"]
    if email is None:
        raise ApiError(
            "unprocessable",
            "Your profile has no email address; set one with PATCH /api/users/me first.",
            details={"reason": "no_email"},
        )
    if row["email_verified"]:
        raise ApiError("conflict", f"{email} is already verified.", details={"reason": "already_verified"})
    await _throttle(request, claims.user_id)
    code = new_code()
    digest = hash_code(settings, _subject(claims.user_id, email), code)
    await pool.execute(
        "INSERT INTO email_codes (user_id, email, code_hash, expires_at)"
        " VALUES ($1, $2, $3, now() + make_interval(secs => $4))"
        " ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, code_hash = EXCLUDED.code_hash,"
        " attempts = 0, created_at = now(), expires_at = EXCLUDED.expires_at, used_at = NULL",
        claims.user_id,
        email,
        digest,
        float(CODE_TTL_S),
    )
    try:
        await email_sender_for(request.app, settings).send(email, code)
    except EmailSendError as exc:
        await pool.execute(
            "DELETE FROM email_codes WHERE user_id = $1 AND code_hash = $2", claims.user_id, digest
        )
        log.error("email code not sent", extra={"userId": claims.user_id, "error": str(exc)})
        raise ApiError("bad_gateway", "The code could not be sent just now; try again in a minute.") from None
    return ok(EmailCodeSent(email=email, expires_in=CODE_TTL_S, resend_after=RESEND_GAP_S))


_FAILURES = {
    "no_code": "No code was sent to your email; request one with POST /api/users/me/email/send-code.",
    "used": "This code was already used; request a new one with POST /api/users/me/email/send-code.",
    "expired": "This code has expired; request a new one with POST /api/users/me/email/send-code.",
    "too_many_attempts": "Too many wrong tries for this code; request a new one with"
    " POST /api/users/me/email/send-code.",
    "email_changed": "Your email changed since this code was sent; request a new one with"
    " POST /api/users/me/email/send-code.",
}


@routes.post(
    "/api/users/me/email/verify",
    summary="Verify my profile's email address with the code sent to it",
    description="Sets emailVerified and answers the profile. 422 when the code is wrong, expired,"
    " used, dead after 5 wrong tries, none was sent, or the email changed since the send"
    " (details.reason: wrong_code with attemptsLeft, expired, used, too_many_attempts, no_code,"
    " email_changed).",
    auth=True,
    body=EmailCode,
    response=User,
    errors=(422,),
)
async def verify_code(request: web.Request, body: EmailCode) -> web.Response:
    """Check the code; on success the profile's email is verified."""
    claims = require_user(request)
    settings = request.app[SETTINGS]
    reason, left, user = "", 0, None
    async with request.app[POOL].acquire() as conn, conn.transaction():
        # Both rows locked: concurrent tries are judged one after another (a code is used once, the
        # try count is exact), and the email cannot change between the check and the update.
        email = await conn.fetchval("SELECT email FROM users WHERE id = $1 FOR UPDATE", claims.user_id)
        row = await conn.fetchrow(
            "SELECT email, code_hash, attempts, used_at, expires_at <= now() AS expired"
            " FROM email_codes WHERE user_id = $1 FOR UPDATE",
            claims.user_id,
        )
        if row is None:
            reason = "no_code"
        elif row["used_at"] is not None:
            reason = "used"
        elif row["expired"]:
            reason = "expired"
        elif row["attempts"] >= MAX_WRONG_TRIES:
            reason = "too_many_attempts"
        elif email is None or email.lower() != row["email"].lower():
            reason = "email_changed"
        elif not code_matches(settings, _subject(claims.user_id, email), body.code, row["code_hash"]):
            reason = "wrong_code"
            tries = await conn.fetchval(
                "UPDATE email_codes SET attempts = attempts + 1 WHERE user_id = $1 RETURNING attempts",
                claims.user_id,
            )
            left = max(MAX_WRONG_TRIES - int(tries), 0)
        else:
            await conn.execute("UPDATE email_codes SET used_at = now() WHERE user_id = $1", claims.user_id)
            await conn.execute("UPDATE users SET email_verified = true WHERE id = $1", claims.user_id)
            # A verified email is an input of the trust rule: the score follows in this transaction.
            await trust.recompute(conn, claims.user_id)
            user = await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", claims.user_id)
    if reason == "wrong_code":
        message = (
            f"Wrong code; {left} tr{'y' if left == 1 else 'ies'} left."
            if left
            else "Wrong code, and no tries are left; request a new one (POST /api/users/me/email/send-code)."
        )
        raise ApiError("unprocessable", message, details={"reason": reason, "attemptsLeft": left})
    if reason:
        raise ApiError("unprocessable", _FAILURES[reason], details={"reason": reason})
    assert user is not None
    return ok(load(User, user))
