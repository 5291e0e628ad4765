"""Fixtures of the browser tests: the Node tools ./test installs, and a whole gigwire app on a
loopback port whose OTP codes the test can read."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from rest.otp import OTP_SENDER

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


async def run_node_script(tools: NodeTools, script: str, spec: dict[str, Any], timeout_s: float) -> Any:
    """Run `script` under Node with `spec` as its JSON argument; return the result object it prints
    last (a line starting with "{"), asserting it finished in time, exited 0 and says ok."""
    proc = await asyncio.create_subprocess_exec(
        tools.node, script, json.dumps(spec), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{script} did not finish in {timeout_s} s") from None
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    assert lines, f"no result from {script} (exit {proc.returncode}): {err.decode()[-2000:]}"
    result = json.loads(lines[-1])
    assert result["ok"], f"{result}\n{err.decode()[-2000:]}"
    assert proc.returncode == 0, err.decode()[-2000:]
    return result


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


@pytest.fixture
async def demo_server(
    make_app: Callable[..., web.Application], aiohttp_server: Any
) -> tuple[TestServer, RecordingOtpSender]:
    """The whole web app on 127.0.0.1 with a recording OTP sender, plus two routes of this test app
    only: `GET /__test/otp?phone=` answers the last code sent to that phone, and
    `POST /__test/drop?phone=` cuts that user's realtime sessions (1013), and
    `POST /__test/order-update?orderId=` publishes an ORDER_UPDATE (submitted) to both parties."""
    app = make_app()
    sender = RecordingOtpSender()
    app[OTP_SENDER] = sender

    async def last_code(request: web.Request) -> web.Response:
        code = sender.codes.get(request.query.get("phone", ""))
        if code is None:
            raise web.HTTPNotFound(text="no code sent to that phone")
        return web.Response(text=code)

    async def drop(request: web.Request) -> web.Response:
        # Cut every realtime session of the user with this phone, as a too-slow reader is cut (1013).
        from hub.codes import TRY_AGAIN_LATER
        from hub.keys import HUB, POOL

        user_id = await request.app[POOL].fetchval(
            "SELECT id::text FROM users WHERE phone = $1", request.query.get("phone", "")
        )
        sessions = list(request.app[HUB].users.get(user_id or "", ()))
        for session in sessions:
            session.close(TRY_AGAIN_LATER, "dropped by the test", flush=False)
        return web.Response(text=str(len(sessions)))

    async def order_update(request: web.Request) -> web.Response:
        # What the outbox relay publishes after a transition (the workers do not run in tests).
        from hub.keys import BROKER, POOL
        from hub.publish import publish_event

        row = await request.app[POOL].fetchrow(
            "SELECT client_id::text AS c, doer_id::text AS d FROM orders WHERE id::text = $1",
            request.query.get("orderId", ""),
        )
        if row is None:
            raise web.HTTPNotFound(text="no such order")
        event = {
            "orderId": request.query["orderId"],
            "status": "submitted",
            "escrowState": "funded",
            "previousStatus": "in_progress",
            "actorId": row["d"],
            "updatedAt": 1,
        }
        for user_id in (row["c"], row["d"]):
            await publish_event(request.app[BROKER], f"user:{user_id}", "ORDER_UPDATE", event)
        return web.Response(text="ok")

    app.router.add_get("/__test/otp", last_code)
    app.router.add_post("/__test/order-update", order_update)
    app.router.add_post("/__test/drop", drop)
    server: TestServer = await aiohttp_server(app, host="127.0.0.1")
    return server, sender
