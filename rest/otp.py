"""One-time login codes: making and hashing them, and the OtpSender contract that delivers them.

`OTP_SENDER=log` (dev) writes each code to the log "gigwire.otp"; `OTP_SENDER=webhook` POSTs
`{"phone", "code"}` as JSON to OTP_WEBHOOK_URL, an SMS bridge. Tests put their own sender under the
app key `OTP_SENDER` before the app starts."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Protocol

import aiohttp
from aiohttp import web

from hub.db import Conn
from hub.settings import Settings

log = logging.getLogger("gigwire.otp")

CODE_DIGITS = 6
WEBHOOK_TIMEOUT_S = 10.0


class OtpSendError(Exception):
    """The code could not be handed to the delivery channel; the caller may try again."""


class OtpSender(Protocol):
    """Delivers a login code to a phone. Raises OtpSendError when delivery could not be started."""

    async def send(self, phone: str, code: str) -> None: ...


OTP_SENDER: web.AppKey[OtpSender] = web.AppKey("otp_sender")
"""When set on the app, the sender used instead of the one OTP_SENDER configures."""


class LogOtpSender:
    """The dev sender: writes the code to the log, where the person testing reads it."""

    async def send(self, phone: str, code: str) -> None:
        """Log one line naming the phone and the code."""
        log.info("OTP code %s for %s", code, phone, extra={"phone": phone})


class WebhookOtpSender:
    """POSTs `{"phone": ..., "code": ...}` as JSON to an SMS bridge; any 2xx answer is success."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def send(self, phone: str, code: str) -> None:
        """One POST with a 10 s limit; OtpSendError on a network failure or a non-2xx status."""
        failure = await post_code(self.url, {"phone": phone, "code": code}, "OTP")
        if failure is not None:
            raise OtpSendError(failure)


async def post_code(url: str, payload: dict[str, str], channel: str) -> str | None:
    """POST `payload` as JSON to a code bridge (SMS, email) within WEBHOOK_TIMEOUT_S: None when it
    answered 2xx, else why not, in words naming the `channel`."""
    timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)
    # Codes are sent a few times a minute at most: a session per send keeps no state to close.
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, json=payload) as resp,
        ):
            if not 200 <= resp.status < 300:
                return f"the {channel} webhook answered HTTP {resp.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"the {channel} webhook is unreachable ({type(exc).__name__})"
    return None


def sender_for(app: web.Application, settings: Settings) -> OtpSender:
    """The app's OTP_SENDER when set, else the sender the settings name."""
    sender = app.get(OTP_SENDER)
    if sender is not None:
        return sender
    if settings.otp_sender == "webhook" and settings.otp_webhook_url:
        return WebhookOtpSender(settings.otp_webhook_url)
    return LogOtpSender()


def new_code() -> str:
    """A uniformly random code of CODE_DIGITS decimal digits, from `secrets`."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def _otp_key(settings: Settings) -> bytes:
    # A key derived from the signing secret, so a database dump alone cannot test the 10^6 codes,
    # and the JWT key itself is never used for anything but JWTs.
    secret = settings.jwt_secret or settings.jwt_private_key
    return hashlib.sha256(b"gigwire-otp-v1:" + secret.encode()).digest()


def hash_code(settings: Settings, phone: str, code: str) -> bytes:
    """HMAC-SHA256 of "phone:code" under a key derived from the server secret."""
    return hmac.new(_otp_key(settings), f"{phone}:{code}".encode(), hashlib.sha256).digest()


def code_matches(settings: Settings, phone: str, code: str, stored: bytes) -> bool:
    """Whether `code` is the one whose hash is `stored`, compared in constant time."""
    return hmac.compare_digest(hash_code(settings, phone, code), stored)


MAX_WRONG_TRIES = 5
"""Wrong tries after which a login code is dead (a new one must be sent)."""


async def judge_phone_code(conn: Conn, settings: Settings, phone: str, code: str) -> tuple[str, int]:
    """Judge `code` for `phone` inside the caller's transaction, the code's row locked FOR UPDATE
    (concurrent tries are judged one after another: a code is used once, the try count is exact).
    ("", 0) when it is right and unused (the caller marks it used: `mark_phone_code_used`), else
    (reason, tries left): no_code, used, expired, too_many_attempts, or wrong_code (counted)."""
    row = await conn.fetchrow(
        "SELECT code_hash, attempts, used_at, expires_at <= now() AS expired"
        " FROM otp_codes WHERE phone = $1 FOR UPDATE",
        phone,
    )
    if row is None:
        return "no_code", 0
    if row["used_at"] is not None:
        return "used", 0
    if row["expired"]:
        return "expired", 0
    if row["attempts"] >= MAX_WRONG_TRIES:
        return "too_many_attempts", 0
    if not code_matches(settings, phone, code, row["code_hash"]):
        tries = await conn.fetchval(
            "UPDATE otp_codes SET attempts = attempts + 1 WHERE phone = $1 RETURNING attempts", phone
        )
        return "wrong_code", max(MAX_WRONG_TRIES - int(tries), 0)
    return "", 0


async def mark_phone_code_used(conn: Conn, phone: str) -> None:
    await conn.execute("UPDATE otp_codes SET used_at = now() WHERE phone = $1", phone)
