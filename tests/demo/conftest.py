"""Fixtures of the browser tests: the Node tools ./test installs, and a whole gigwire app on a
loopback port whose OTP codes the test can read."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parents[2]
NODE_DEPS = ROOT / ".deps" / "node"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")


@dataclass(frozen=True)
class NodeTools:
    node: str
    deps: Path  # holds node_modules with socket.io-client and playwright-core


def node_tools(*packages: str) -> NodeTools:
    """The node binary and .deps/node, or skip the test naming what is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (./test needs nodejs and npm for the Node tests)")
    for package in packages:
        if not (NODE_DEPS / "node_modules" / package / "package.json").exists():
            pytest.skip(f"{package} is not in .deps/node: run ./test, which installs it with npm")
    return NodeTools(node, NODE_DEPS)


def chromium_path() -> Path:
    """Debian's Chromium, or skip."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("chromium is not installed (./test installs it with apt-get when run as root)")
    return CHROMIUM


@dataclass
class RecordingOtpSender:
    """An OtpSender that keeps the last code sent to each phone instead of texting it."""

    codes: dict[str, str] = field(default_factory=dict)

    async def send(self, phone: str, code: str) -> None:
        self.codes[phone] = code


def require_routes(app: web.Application, *paths: str) -> None:
    """Skip, naming them, when routes the demo needs are not in the app yet."""
    known = {r.canonical for r in app.router.resources()}
    missing = [p for p in paths if p not in known]
    if missing:
        pytest.skip(f"the app has no route {', '.join(missing)} yet: the demo needs it")


@pytest.fixture
async def demo_server(
    make_app: Callable[..., web.Application], aiohttp_server: Any
) -> tuple[TestServer, RecordingOtpSender]:
    """The whole web app on 127.0.0.1 with a recording OTP sender, plus `GET /__test/otp?phone=`
    answering the last code sent to that phone (this test app only)."""
    try:
        from rest.otp import OTP_SENDER
    except ImportError:
        pytest.skip("rest/otp.py (phone OTP login) has not landed yet")
    app = make_app()
    require_routes(app, "/ws", "/api/auth/send-otp", "/api/auth/verify-otp", "/api/orders")
    sender = RecordingOtpSender()
    app[OTP_SENDER] = sender

    async def last_code(request: web.Request) -> web.Response:
        code = sender.codes.get(request.query.get("phone", ""))
        if code is None:
            raise web.HTTPNotFound(text="no code sent to that phone")
        return web.Response(text=code)

    app.router.add_get("/__test/otp", last_code)
    server: TestServer = await aiohttp_server(app, host="127.0.0.1")
    return server, sender
