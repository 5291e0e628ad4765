"""Fixtures of the notification tests: the whole web app with its workers and a fake FCM, users with
a device, a /ws session that records every frame, and REST helpers for a whole order."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from hub.settings import Settings
from tests.factories import TestUser, make_user
from tests.market.conftest import apply, create_gig
from tests.workers.conftest import add_device
from tests.workers.fake_fcm import FakeFcm

__all__ = ["Live", "Party", "apply", "create_gig", "eventually", "idem"]


@pytest.fixture
async def fcm() -> AsyncIterator[FakeFcm]:
    server = FakeFcm()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def app_client(
    aiohttp_client: Callable[..., Any], make_app: Callable[..., Any], fcm: FakeFcm, tmp_path: Path
) -> TestClient[Any, Any]:
    """The whole web app (sandbox gateway) with its workers embedded, pushing to the fake FCM; the
    timers sweep every half second."""
    app = make_app(
        run_workers=True,
        fcm_credentials_file=fcm.credentials_file(tmp_path),
        fcm_endpoint=fcm.url,
        timer_sweep_s=0.5,
    )
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


@dataclass
class Party:
    """A user with one phone: what reaches them on each channel."""

    user: TestUser
    phone: str
    api: TestClient[Any, Any]
    fcm: FakeFcm

    @property
    def id(self) -> str:
        return self.user.id

    @property
    def headers(self) -> dict[str, str]:
        return self.user.headers

    async def inbox(self) -> list[dict[str, Any]]:
        """GET /api/notifications (every page), newest first."""
        items: list[dict[str, Any]] = []
        cursor = ""
        while True:
            r = await self.api.get(f"/api/notifications?limit=100{cursor}", headers=self.headers)
            assert r.status == 200, await r.text()
            body = await r.json()
            items += body["data"]
            if body["nextCursor"] is None:
                return items
            cursor = f"&cursor={body['nextCursor']}"

    def pushes(self) -> list[dict[str, Any]]:
        """The NOTIFICATION pushes FCM accepted for this user's phone, in order."""
        return [m for m in self.fcm.sent_to(self.phone) if m["data"].get("type") == "NOTIFICATION"]

    async def prefer(self, **types: dict[str, bool]) -> None:
        r = await self.api.put("/api/notifications/preferences", json=types, headers=self.headers)
        assert r.status == 200, await r.text()


@pytest.fixture
def party(pool: asyncpg.Pool, settings: Settings, app_client: TestClient[Any, Any], fcm: FakeFcm) -> Any:
    async def build(name: str, roles: tuple[str, ...] = ("doer", "client")) -> Party:
        user = await make_user(pool, settings, roles=roles, name=name)
        return Party(user, await add_device(pool, user), app_client, fcm)

    return build


@dataclass
class Live:
    """A /ws session of one user, recording every frame it receives."""

    ws: aiohttp.ClientWebSocketResponse
    frames: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def notifications(self) -> list[dict[str, Any]]:
        return [f["data"] for f in self.frames if f.get("type") == "NOTIFICATION"]

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.frames.append(message.json())

    async def send(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send a client frame with a fresh ref; its ACK (or ERROR) frame."""
        ref = secrets.token_hex(4)
        await self.ws.send_json({**frame, "ref": ref})
        return await eventually(lambda: next((f for f in self.frames if f.get("ref") == ref), None))


@pytest.fixture
async def live(app_client: TestClient[Any, Any]) -> AsyncIterator[Callable[..., Any]]:
    """live(user): a connected, authenticated /ws session of `user`."""
    opened: list[Live] = []

    async def connect(user: Party | TestUser) -> Live:
        token = user.user.token if isinstance(user, Party) else user.token
        session = Live(await app_client.ws_connect(f"/ws?token={token}"))
        first = await session.ws.receive_json()
        assert first["type"] == "AUTHENTICATED", first
        session.task = asyncio.create_task(session._read())
        opened.append(session)
        return session

    yield connect
    for session in opened:
        await session.ws.close()
        if session.task is not None:
            session.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await session.task


async def eventually(probe: Callable[[], Any], within: float = 20.0) -> Any:
    """Poll `probe` (sync or async) until it returns something truthy; that value."""
    async with asyncio.timeout(within):
        while True:
            value = probe()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(0.05)


def idem(user: Party) -> dict[str, str]:
    return {**user.headers, "Idempotency-Key": secrets.token_hex(8)}
