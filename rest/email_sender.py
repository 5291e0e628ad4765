"""The EmailSender contract: how an email verification code reaches its address. The same contract
as rest/otp.py's OtpSender, for email.

`EMAIL_SENDER=log` (dev) writes each code to the log "gigwire.email"; `EMAIL_SENDER=webhook` POSTs
`{"email", "code"}` as JSON to EMAIL_WEBHOOK_URL, an email bridge (any 2xx answer is success).
Tests may put their own sender under the app key `EMAIL_SENDER` before the app starts."""

from __future__ import annotations

import logging
from typing import Protocol

from aiohttp import web

from hub.settings import Settings
from rest.otp import post_code

log = logging.getLogger("gigwire.email")


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
        failure = await post_code(self.url, {"email": email, "code": code}, "email")
        if failure is not None:
            raise EmailSendError(failure)


def email_sender_for(app: web.Application, settings: Settings) -> EmailSender:
    """The app's EMAIL_SENDER when set, else the sender the settings name."""
    sender = app.get(EMAIL_SENDER)
    if sender is not None:
        return sender
    if settings.email_sender == "webhook" and settings.email_webhook_url:
        return WebhookEmailSender(settings.email_webhook_url)
    return LogEmailSender()
