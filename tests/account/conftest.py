"""Account tests: the money fixtures (an app paying through the fake Razorpay, parties), and a local
email bridge that catches the codes the app sends by EMAIL_SENDER=webhook."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hub.settings import Settings
from tests.money.conftest import api, money_settings, parties, razorpay

__all__ = ["EmailBridge", "api", "mail", "mail_api", "money_settings", "parties", "razorpay"]


@dataclass
class EmailBridge:
    """An email bridge on loopback: keeps every {email, code} POSTed to it; answers `status`."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/send", self._send)
        return app

    async def _send(self, request: web.Request) -> web.Response:
        self.sent.append(await request.json())
        return web.json_response({"ok": self.status < 300}, status=self.status)

    def last(self, email: str) -> str:
        """The last code sent to `email`."""
        codes = [m["code"] for m in self.sent if m["email"] == email]
        assert codes, f"no code was sent to {email}"
        return str(codes[-1])


@pytest.fixture
async def mail(aiohttp_server: Callable[..., Any]) -> EmailBridge:
    bridge = EmailBridge()
    server: TestServer = await aiohttp_server(bridge.app())
    bridge.url = str(server.make_url("/send"))
    return bridge


@pytest.fixture
async def mail_api(
    aiohttp_client: Callable[..., Any],
    make_app: Callable[..., web.Application],
    money_settings: Settings,
    mail: EmailBridge,
) -> TestClient[Any, Any]:
    """A client of the whole app sending email codes to `mail` and paying through the fake Razorpay.
    The per-IP send limit is out of the way: every test of a run sends from 127.0.0.1."""
    overrides = {
        k: getattr(money_settings, k)
        for k in (
            "payment_gateway",
            "razorpay_base_url",
            "razorpay_key_id",
            "razorpay_key_secret",
            "razorpay_webhook_secret",
        )
    }
    client: TestClient[Any, Any] = await aiohttp_client(
        make_app(email_sender="webhook", email_webhook_url=mail.url, otp_sends_per_ip=1_000_000, **overrides)
    )
    return client
