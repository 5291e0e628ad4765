"""Every use gigwire makes of firebase-admin's private modules and attributes, and nothing else.

Checked against firebase-admin 7.0.0 and 7.1.0 (their source) and 7.7.0 (installed; the push tests
drive it against a local FCM server). pyproject.toml pins FIREBASE_ADMIN_VERSIONS to match; before
widening the pin, read the new version's firebase_admin/messaging.py, _http_client.py and
_retry.py, and run tests/workers/test_compat_firebase.py, which fails naming whatever is gone.

What is used, and why there is no public way:
- `messaging._get_messaging_service(app)`: the messaging service of one App, whose URL and HTTP
  client are replaced below (each sender has its own named App, so nothing global changes).
- `service._fcm_url`: the send URL the SDK built from the project id. It is rewritten to point the
  SDK at another FCM endpoint (a local test server, a proxy): v7 has no emulator variable for
  messaging. Everything else (building, signing, encoding, parsing) stays the SDK's.
- `service._async_client`, `service._credential`, `_http_client.HttpxAsyncClient`,
  `_retry.HttpxRetry`: the SDK's async transport retries 500/503 by itself (up to 4 times,
  sleeping up to 4 s). The client is replaced by one with `max_retries=0`, so that retries have
  one owner (workers/push.py: durable, with jitter and retry-after, never holding a claim while
  sleeping). It speaks HTTP/2 (`http2=True`, the SDK's default, said explicitly): every send of a
  process goes over one TLS connection as concurrent streams.
- `HttpxAsyncClient.async_client` (a public property of that private class): the httpx client
  underneath, whose per-request auth flow is removed. That flow builds a `requests.Session` for
  every message and refreshes an expired token with a blocking call in the event loop; instead the
  sender refreshes in a thread before each batch and sets the token in the client's default
  headers (workers/fcm.py), with google-auth's and httpx's public APIs."""

from __future__ import annotations

import importlib
from typing import Any

import httpx

FIREBASE_ADMIN_VERSIONS = ">=7.0,<8"
"""The firebase-admin versions this module was checked against (pyproject.toml pins the same)."""

MODULE_ATTRIBUTES = (
    ("firebase_admin.messaging", "_get_messaging_service"),
    ("firebase_admin._http_client", "HttpxAsyncClient"),
    ("firebase_admin._retry", "HttpxRetry"),
)
"""(module, name) of every private module-level name used here."""

SERVICE_ATTRIBUTES = ("_fcm_url", "_async_client", "_credential")
"""Every private attribute of the messaging service used here."""

FCM_PATH = "/v1/projects/{project}/messages:send"
"""The send path the SDK appends to https://fcm.googleapis.com (kept when the endpoint changes)."""

_SEND_TIMEOUT_S = 30


def missing_module_attributes() -> list[str]:
    """The private module-level names of MODULE_ATTRIBUTES this firebase-admin lacks, dotted."""
    missing = []
    for module, name in MODULE_ATTRIBUTES:
        try:
            found = hasattr(importlib.import_module(module), name)
        except ImportError:
            found = False
        if not found:
            missing.append(f"{module}.{name}")
    return missing


def messaging_service(app: Any) -> Any:
    """The messaging service firebase-admin keeps for `app` (created on first use)."""
    from firebase_admin import messaging

    return messaging._get_messaging_service(app)


def tune_service(service: Any, project_id: str, endpoint: str | None) -> httpx.AsyncClient:
    """Send through `endpoint` (scheme and host; None keeps the SDK's), over HTTP/2, without the
    transport's own retries and without per-request auth: returns the httpx client, in whose default
    headers the caller keeps `Authorization` current. Raises RuntimeError, naming what is missing,
    when this firebase-admin lacks an attribute used: a sender then fails at start instead of
    silently sending elsewhere."""
    from firebase_admin import _http_client, _retry

    missing = [name for name in SERVICE_ATTRIBUTES if not hasattr(service, name)]
    if missing:
        raise RuntimeError(
            f"firebase-admin changed: its messaging service has no {', '.join(missing)};"
            f" workers/compat_firebase.py was checked against firebase-admin {FIREBASE_ADMIN_VERSIONS}"
        )
    if endpoint is not None:
        service._fcm_url = endpoint + FCM_PATH.format(project=project_id)
    client = _http_client.HttpxAsyncClient(
        credential=service._credential,
        retry_config=_retry.HttpxRetry(max_retries=0),
        timeout=_SEND_TIMEOUT_S,
        http2=True,
    )
    http: httpx.AsyncClient = client.async_client
    http.auth = httpx.Auth()  # the base class adds nothing to a request
    service._async_client = client
    return http


async def close_service(service: Any) -> None:
    """Close the HTTP client `tune_service` gave the service."""
    await service._async_client.aclose()
