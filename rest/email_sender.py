"""The EmailSender contract: how an email verification code reaches its address. The same contract
as rest/otp.py's OtpSender, for email.

`EMAIL_SENDER=log` (dev) writes each code to the log "gigwire.email"; `EMAIL_SENDER=webhook` POSTs
`{"email", "code"}` as JSON to EMAIL_WEBHOOK_URL, an email bridge (any 2xx answer is success).
Tests may put their own sender under the app key `EMAIL_SENDER` before the app starts."""

from __future__ import annotations

import logging
from typing import Protocol

import aiohttp
from aiohttp import web

from hub.settings import Settings

log = logging.getLogger("gigwire.email")

WEBHOOK_TIMEOUT_S = 10.0


class EmailSendError(Exception):
    """The code could not be handed to the delivery channel; the caller may try again."""


class EmailSender(Protocol):
    """Delivers a verification code to an email address. Raises EmailSendError when delivery could
    not be started."""

    async def send(self, email: str, code: str) -> None: ...


EMAIL_SENDER: web.AppKey[EmailSender] = web.AppKey("email_sender")
"""When set on the app, the sender used instead of the one EMAIL_SENDER configures."""


class LogEmailSender:
    """The dev sender: writes the code to the log, where the person testing reads it."""

    async def send(self, email: str, code: str) -> None:
        """Log one line naming the address and the code."""
        log.info("email code %s for %s", code, email, extra={"email": email})


class WebhookEmailSender:
    """POSTs `{"email": ..., "code": ...}` as JSON to an email bridge; any 2xx answer is success."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def send(self, email: str, code: str) -> None:
        """One POST with a 10 s limit; EmailSendError on a network failure or a non-2xx status."""
        timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)
        # A few sends a minute at most: a session per send keeps no state to close.
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(self.url, json={"email": email, "code": code}) as resp,
            ):
                if not 200 <= resp.status < 300:
                    raise EmailSendError(f"the email webhook answered HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EmailSendError(f"the email webhook is unreachable ({type(exc).__name__})") from None


def email_sender_for(app: web.Application, settings: Settings) -> EmailSender:
    """The app's EMAIL_SENDER when set, else the sender the settings name."""
    sender = app.get(EMAIL_SENDER)
    if sender is not None:
        return sender
    if settings.email_sender == "webhook" and settings.email_webhook_url:
        return WebhookEmailSender(settings.email_webhook_url)
    return LogEmailSender()
