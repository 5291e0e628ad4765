"""Fixtures of the REST tests: an app whose OTP codes the test reads, and logging in through it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from hub.settings import Settings
from rest.otp import OTP_SENDER
from tests.factories import random_phone
from tests.services import Services


@dataclass
class CapturingSender:
    """An OtpSender that keeps every code it is given instead of texting it."""

    sent: list[tuple[str, str]] = field(default_factory=list)

    async def send(self, phone: str, code: str) -> None:
        self.sent.append((phone, code))

    def last(self, phone: str) -> str:
        """The last code sent to `phone`."""
        codes = [c for p, c in self.sent if p == phone]
        assert codes, f"no code was sent to {phone}"
        return codes[-1]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings, with the per-IP OTP send limit out of the way: every test of a run
    sends from 127.0.0.1 through one Redis prefix. Its own test sets a small limit."""
    return settings.with_(otp_sends_per_ip=1_000_000)


@pytest.fixture
def fresh_prefix(services: Services) -> str:
    """A Redis key prefix of this test alone (under the run's prefix, so the run's cleanup clears it)."""
    return f"{services.redis_prefix}{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def sender() -> CapturingSender:
    return CapturingSender()


@pytest.fixture
async def api(
    aiohttp_client: Any, make_app: Callable[..., web.Application], sender: CapturingSender
) -> TestClient[Any, Any]:
    """A test client of the whole app, its OTP codes going to `sender`."""
    app = make_app()
    app[OTP_SENDER] = sender
    result: TestClient[Any, Any] = await aiohttp_client(app)
    return result


async def skip_resend_gap(services: Services, phone: str) -> None:
    """Stand in for waiting 30 s: drop the phone's short send window from the shared Store."""
    redis = Redis.from_url(services.redis_url)
    try:
        await redis.delete(f"{services.redis_prefix}otp:gap:{phone}")
    finally:
        await redis.aclose()


async def login(
    api: TestClient[Any, Any], sender: CapturingSender, phone: str | None = None
) -> dict[str, Any]:
    """Send a code to `phone` (a fresh one when None), verify it, and return verify-otp's data."""
    phone = phone or random_phone()
    resp = await api.post("/api/auth/send-otp", json={"phone": phone})
    assert resp.status == 200, await resp.text()
    resp = await api.post("/api/auth/verify-otp", json={"phone": phone, "otp": sender.last(phone)})
    body = await resp.json()
    assert resp.status == 200, body
    data: dict[str, Any] = body["data"]
    return data
