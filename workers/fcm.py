"""Sending pushes: through firebase-admin to FCM, or to the log when no credentials are set.

Each FcmSender has its own named firebase App. Its messaging service is pointed at the configured
FCM endpoint (a local test server, a proxy) and loses the SDK transport's own retries, so that
retries have one owner (workers/push.py); both need firebase-admin internals, which are all in
workers/compat_firebase.py with the versions they were checked against. The OAuth token endpoint
needs no hook: it is the service account's `token_uri`.

The path to FCM is HTTP/2 over TLS: one connection per sender, reused from batch to batch (httpx
closes it after 5 s idle), each message a stream on it, at most 100 at a time. The OAuth token is
refreshed in a thread before a batch (google-auth refreshes with a blocking call) and set as a
default header, so a message costs no auth work. TLS trust is the default one; SSL_CERT_FILE (httpx)
and REQUESTS_CA_BUNDLE (the token endpoint, through requests) name another CA file."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from workers import compat_firebase

log = logging.getLogger("gigwire.workers.fcm")

BATCH_MAX = 500  # send_each_async refuses more than 500 messages per call
CONCURRENCY = BATCH_MAX
"""Messages handed to the SDK at once. send_each_async starts them all; httpx puts at most 100 on
the wire at a time (its cap on a connection's HTTP/2 streams) and queues the rest. Smaller groups,
sent one after another, drain the connection at each boundary: 100 measured no less CPU per push
and a lower rate (bench/README.md, Push throughput)."""
DEFAULT_ENDPOINT = "https://fcm.googleapis.com"

Status = Literal["sent", "prune", "retry", "fail"]


@dataclass(frozen=True)
class PushMessage:
    """One push to one device token."""

    token: str
    platform: str
    title: str
    body: str
    data: dict[str, str] = field(default_factory=dict)
    collapse_key: str | None = None
    priority: Literal["high", "normal"] = "high"


@dataclass(frozen=True)
class SendResult:
    """What became of one message: sent; prune (the token is dead: delete the device); retry
    (a transient failure, with the server's retry-after when it gave one); fail (will not work)."""

    status: Status
    reason: str = ""
    retry_after: float | None = None


class PushSender(Protocol):
    """Sends messages; returns one result per message, in order. Never raises for a send failure."""

    async def send(self, messages: Sequence[PushMessage]) -> list[SendResult]: ...
    async def close(self) -> None: ...


class LogSender:
    """The dev default: logs each push instead of sending it."""

    def __init__(self) -> None:
        log.warning("FCM_CREDENTIALS_FILE is not set: pushes are written to the log, not sent")

    async def send(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        for m in messages:
            log.info(
                "push (log only)",
                extra={"token": "…" + m.token[-8:], "title": m.title, "body": m.body, "data": m.data},
            )
        return [SendResult("sent") for _ in messages]

    async def close(self) -> None:
        return None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def classify(exc: BaseException) -> SendResult:
    """Map a firebase-admin error to what the push worker does about it."""
    from firebase_admin import exceptions, messaging

    response = getattr(exc, "http_response", None)
    retry_after = parse_retry_after(response.headers.get("retry-after")) if response is not None else None
    if isinstance(exc, messaging.UnregisteredError):
        return SendResult("prune", "unregistered")
    if isinstance(exc, messaging.SenderIdMismatchError):
        return SendResult("prune", "sender_id_mismatch")
    if isinstance(exc, exceptions.InvalidArgumentError):
        return SendResult("prune", "invalid_argument")
    if isinstance(exc, messaging.QuotaExceededError):
        return SendResult("retry", "quota_exceeded", retry_after)
    if isinstance(exc, exceptions.UnavailableError):
        return SendResult("retry", "unavailable", retry_after)
    if isinstance(exc, exceptions.InternalError):
        return SendResult("retry", "internal", retry_after)
    if isinstance(exc, exceptions.DeadlineExceededError | exceptions.UnauthenticatedError):
        return SendResult("retry", type(exc).__name__, retry_after)
    if isinstance(exc, exceptions.ResourceExhaustedError):
        return SendResult("retry", "resource_exhausted", retry_after)
    return SendResult("fail", f"{type(exc).__name__}: {exc}"[:500])


class FcmSender:
    """Sends through firebase-admin's `messaging.send_each_async`, `concurrency` messages at a time
    (at most 500, the SDK's limit)."""

    def __init__(
        self, credentials_file: str, endpoint: str = DEFAULT_ENDPOINT, *, concurrency: int = CONCURRENCY
    ) -> None:
        import firebase_admin
        from firebase_admin import credentials

        self.concurrency = max(1, min(concurrency, BATCH_MAX))
        self._cred = credentials.Certificate(credentials_file)
        self._app = firebase_admin.initialize_app(self._cred, name=f"gigwire-push-{uuid.uuid4().hex}")
        self._service = compat_firebase.messaging_service(self._app)
        self._http = compat_firebase.tune_service(
            self._service, self._app.project_id, None if endpoint == DEFAULT_ENDPOINT else endpoint
        )
        self._token_refused = False  # FCM answered 401: refresh the token before the next batch
        log.info("FCM sender ready", extra={"project": self._app.project_id, "endpoint": endpoint})

    def _message(self, m: PushMessage) -> Any:
        from firebase_admin import messaging

        high = m.priority == "high"
        apns_headers = {"apns-priority": "10" if high else "5"}
        if m.collapse_key:
            apns_headers["apns-collapse-id"] = m.collapse_key[:64]
        # v7.7 deprecates `token` for Firebase installation ids (`fid`), but apps still register
        # FCM registration tokens and the v1 API still takes them as `message.token`.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return self._build(messaging, m, high, apns_headers)

    @staticmethod
    def _build(messaging: Any, m: PushMessage, high: bool, apns_headers: dict[str, str]) -> Any:
        return messaging.Message(
            token=m.token,
            notification=messaging.Notification(title=m.title, body=m.body),
            data=m.data,
            android=messaging.AndroidConfig(
                collapse_key=m.collapse_key, priority="high" if high else "normal"
            ),
            apns=messaging.APNSConfig(headers=apns_headers),
            webpush=messaging.WebpushConfig(headers={"Urgency": "high" if high else "normal"}),
        )

    async def _authorize(self) -> None:
        """Put a valid OAuth token in the client's default headers, refreshing it in a thread (a
        blocking HTTP call) when it expires soon or FCM refused it."""
        google_cred = self._cred.get_credential()
        if self._token_refused or not google_cred.valid:
            from google.auth.transport.requests import Request

            await asyncio.to_thread(google_cred.refresh, Request())
            self._token_refused = False
        headers: dict[str, str] = {}
        google_cred.apply(headers)
        self._http.headers.update(headers)

    async def send(self, messages: Sequence[PushMessage]) -> list[SendResult]:
        from firebase_admin import exceptions, messaging

        results: list[SendResult] = []
        for start in range(0, len(messages), self.concurrency):
            chunk = messages[start : start + self.concurrency]
            try:
                await self._authorize()
                batch = await messaging.send_each_async([self._message(m) for m in chunk], app=self._app)
            except Exception as exc:
                log.warning("FCM batch failed", extra={"error": repr(exc), "messages": len(chunk)})
                results.extend(SendResult("retry", f"batch: {type(exc).__name__}") for _ in chunk)
                continue
            for response in batch.responses:
                if response.success:
                    results.append(SendResult("sent"))
                    continue
                if isinstance(response.exception, exceptions.UnauthenticatedError):
                    self._token_refused = True
                results.append(classify(response.exception))
        return results

    async def close(self) -> None:
        import firebase_admin

        await compat_firebase.close_service(self._service)
        # delete_app closes the service with asyncio.run(), which needs a thread without a loop.
        await asyncio.to_thread(firebase_admin.delete_app, self._app)


def create_sender(credentials_file: str | None, endpoint: str = DEFAULT_ENDPOINT) -> PushSender:
    """FCM when a service-account file is given, else the log sender (the dev default)."""
    if credentials_file:
        return FcmSender(credentials_file, endpoint)
    return LogSender()
