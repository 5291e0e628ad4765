"""A local server speaking the FCM HTTP v1 API and Google's OAuth token endpoint over TLS, for
driving the real firebase-admin SDK in tests and benchmarks, on the path it takes to Google.

- POST /v1/projects/{project}/messages:send, over HTTP/2 only (as fcm.googleapis.com; the SDK's
  httpx client negotiates h2 by ALPN): needs the issued bearer token; answers
  {"name": "projects/<p>/messages/<n>"} or a google.rpc Status error with an FcmError detail.
- POST /token on a port of its own (oauth2.googleapis.com is another host), over HTTP/1.1 + TLS,
  which is what google-auth's `requests` transport speaks: the service-account JWT-bearer grant;
  the assertion is verified with the test key's public half and the audience; answers
  {access_token, expires_in, token_type}.
Both use a certificate from a CA made at start(); while it serves, the process trusts that CA
(SSL_CERT_FILE for httpx, REQUESTS_CA_BUNDLE for requests, as a deployment behind a private CA would
set them; child processes inherit them), and close() restores both variables.
Replies are scripted per device token (a list consumed in order, then success)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.workers.h2_tls import Certificates, H2Request, H2Response, H2Server, make_certificates

PROJECT = "gigwire-test"
TRUST_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")

# FCM error code -> (HTTP status, google.rpc status)
ERRORS = {
    "UNREGISTERED": (404, "NOT_FOUND"),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT"),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED"),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED"),
    "UNAVAILABLE": (503, "UNAVAILABLE"),
    "INTERNAL": (500, "INTERNAL"),
}


@dataclass
class Reply:
    """A scripted answer: an FCM error code (None: success) and extra headers."""

    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeFcm:
    """The server's state: received messages, scripts per token, and an optional hold that stalls
    every send after `hold_after` messages until released (to kill a worker mid-batch)."""

    def __init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self.public_key = key.public_key()
        self.port = _free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.token_port = _free_port()
        self.token_url = f"https://127.0.0.1:{self.token_port}/token"
        self.received: list[dict[str, Any]] = []  # every message FCM accepted, in order
        self.attempts: list[dict[str, Any]] = []  # every send request, accepted or not
        # (HTTP version, TLS connection number) of every send request, in order
        self.send_requests: list[tuple[str, int]] = []
        self.scripts: dict[str, list[Reply]] = {}
        self.tokens_issued: set[str] = set()
        self.token_requests = 0
        self.delay = 0.0
        self.hold_after: int | None = None
        self.released = asyncio.Event()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._h2: H2Server | None = None
        self._directory: str | None = None
        self._saved_env: dict[str, str | None] = {}
        self.certificates: Certificates | None = None

    @property
    def connections(self) -> int:
        """TLS connections the FCM API accepted (HTTP/2 only) so far."""
        return self._h2.connections if self._h2 is not None else 0

    @property
    def refused(self) -> int:
        """Connections to the FCM API refused because the client did not offer HTTP/2."""
        return self._h2.refused if self._h2 is not None else 0

    def credentials_file(self, directory: Path) -> str:
        """Write a service-account JSON whose token_uri is this server; return its path."""
        path = directory / "fcm-service-account.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": PROJECT,
                    "private_key_id": "test-key-1",
                    "private_key": self.private_pem,
                    "client_email": f"push@{PROJECT}.iam.gserviceaccount.com",
                    "client_id": "1",
                    "token_uri": self.token_url,
                }
            )
        )
        return str(path)

    def script(self, token: str, *replies: Reply) -> None:
        """Answer the next sends to `token` with `replies`, in order; success after them."""
        self.scripts.setdefault(token, []).extend(replies)

    def sent_to(self, token: str) -> list[dict[str, Any]]:
        """The accepted messages addressed to `token`."""
        return [m for m in self.received if m.get("token") == token]

    async def start(self) -> None:
        """Serve both endpoints, and trust their CA in this process until close()."""
        self._directory = tempfile.mkdtemp(prefix="gigwire-fake-fcm-")
        self.certificates = make_certificates(Path(self._directory))
        self._h2 = H2Server(self._handle, self.certificates)
        await self._h2.start("127.0.0.1", self.port)
        app = web.Application()
        app.router.add_post("/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        tls = self.certificates.server_context(["http/1.1"])
        await web.TCPSite(self._runner, "127.0.0.1", self.token_port, ssl_context=tls).start()
        for name in TRUST_VARIABLES:
            self._saved_env[name] = os.environ.get(name)
            os.environ[name] = self.certificates.ca_file

    async def close(self) -> None:
        self.released.set()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        if self._h2 is not None:
            await self._h2.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.token_requests += 1
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            jwt.decode(
                str(form.get("assertion")),
                self.public_key,
                algorithms=["RS256"],
                # google-auth signs for Google's token endpoint whatever token_uri says.
                audience=["https://oauth2.googleapis.com/token", self.token_url],
            )
        except jwt.PyJWTError as exc:
            return web.json_response({"error": "invalid_grant", "error_description": str(exc)}, status=400)
        token = f"ya29.fake-{next(self._ids)}"
        self.tokens_issued.add(token)
        return web.json_response({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    async def _handle(self, request: H2Request) -> H2Response:
        project = _send_project(request)
        if project is None:
            return _json(404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})
        self.send_requests.append((request.http_version, request.connection))
        auth = request.headers.get("authorization", "")
        if auth.removeprefix("Bearer ") not in self.tokens_issued:
            return _error(401, "UNAUTHENTICATED", None, "Request had invalid authentication credentials.")
        if project != PROJECT:
            return _error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "wrong project")
        body = json.loads(request.body)
        message = body.get("message", {})
        self.attempts.append(message)
        if self.hold_after is not None and len(self.received) >= self.hold_after:
            await self.released.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        script = self.scripts.get(message.get("token", ""))
        reply = script.pop(0) if script else Reply()
        if reply.error is not None:
            status, rpc = ERRORS[reply.error]
            return _error(status, rpc, reply.error, f"scripted {reply.error}", reply.headers)
        self.received.append(message)
        return _json(200, {"name": f"projects/{PROJECT}/messages/{next(self._ids)}"})


def _send_project(request: H2Request) -> str | None:
    """The project of a POST to /v1/projects/{project}/messages:send, else None."""
    prefix, suffix = "/v1/projects/", "/messages:send"
    path = request.path.split("?")[0]
    if request.method != "POST" or not path.startswith(prefix) or not path.endswith(suffix):
        return None
    return path[len(prefix) : -len(suffix)] or None


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> H2Response:
    return H2Response(
        status,
        json.dumps(body).encode(),
        {"content-type": "application/json; charset=UTF-8", **(headers or {})},
    )


def _error(
    status: int, rpc: str, fcm_code: str | None, message: str, headers: dict[str, str] | None = None
) -> H2Response:
    details = (
        [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}]
        if fcm_code
        else []
    )
    body = {"error": {"code": status, "message": message, "status": rpc, "details": details}}
    return _json(status, body, {k.lower(): v for k, v in (headers or {}).items()})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
