"""A local HTTP server speaking the FCM HTTP v1 API and Google's OAuth token endpoint, for driving
the real firebase-admin SDK in tests and benchmarks.

- POST /token: the service-account JWT-bearer grant; the assertion is verified with the test key's
  public half and the audience; answers {access_token, expires_in, token_type}.
- POST /v1/projects/{project}/messages:send: needs the issued bearer token; answers
  {"name": "projects/<p>/messages/<n>"} or a google.rpc Status error with an FcmError detail.
Replies are scripted per device token (a list consumed in order, then success)."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PROJECT = "gigwire-test"

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
        self.url = f"http://127.0.0.1:{self.port}"
        self.received: list[dict[str, Any]] = []  # every message FCM accepted, in order
        self.attempts: list[dict[str, Any]] = []  # every send request, accepted or not
        self.scripts: dict[str, list[Reply]] = {}
        self.tokens_issued: set[str] = set()
        self.token_requests = 0
        self.delay = 0.0
        self.hold_after: int | None = None
        self.released = asyncio.Event()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

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
                    "token_uri": f"{self.url}/token",
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
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def close(self) -> None:
        self.released.set()
        if self._runner is not None:
            await self._runner.cleanup()

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
                audience=["https://oauth2.googleapis.com/token", f"{self.url}/token"],
            )
        except jwt.PyJWTError as exc:
            return web.json_response({"error": "invalid_grant", "error_description": str(exc)}, status=400)
        token = f"ya29.fake-{next(self._ids)}"
        self.tokens_issued.add(token)
        return web.json_response({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    async def _send(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.tokens_issued:
            return _error(401, "UNAUTHENTICATED", None, "Request had invalid authentication credentials.")
        if request.match_info["project"] != PROJECT:
            return _error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "wrong project")
        body = await request.json()
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
        return web.json_response({"name": f"projects/{PROJECT}/messages/{next(self._ids)}"})


def _error(
    status: int, rpc: str, fcm_code: str | None, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    details = (
        [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}]
        if fcm_code
        else []
    )
    body = {"error": {"code": status, "message": message, "status": rpc, "details": details}}
    return web.json_response(body, status=status, headers=headers)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
