"""Fixtures every test shares: this run's PostgreSQL database and Redis prefix, settings, apps."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient, TestServer
from aiohttp.web_runner import BaseRunner

from hub.__main__ import compose_app
from hub.db import create_pool
from hub.door import Runner
from hub.settings import Settings
from tests.frame_recorder import FrameRecorder
from tests.services import Services, provision

TEST_JWT_SECRET = "gigwire-test-secret-" + "x" * 40

FRAMES = FrameRecorder()
"""Every server frame the hub encodes during the run (a sample per shape), for the check below."""


@pytest.fixture(scope="session", autouse=True)
def frame_recorder() -> Iterator[FrameRecorder]:
    """Record the server frames encoded in this process for the whole run (tests/frame_recorder.py)."""
    FRAMES.install()
    yield FRAMES
    FRAMES.uninstall()


_WORKER_FRAMES: list[dict[str, Any]] = []
"""What each pytest-xdist worker's recorder saw (./test runs the suite in two processes)."""


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the controller of a parallel run: keep a finished worker's frame check."""
    report = getattr(node, "workeroutput", {}).get("frames")
    if report is not None:
        _WORKER_FRAMES.append(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a server frame the hub sent does not validate against /api/asyncapi.json.
    A parallel run's workers hand their check to the controller, which reports them all."""
    problems = FRAMES.problems() if FRAMES.samples else []
    report = {"seen": FRAMES.seen, "shapes": sorted(map(repr, FRAMES.samples)), "problems": problems}
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:  # a pytest-xdist worker
        worker_output["frames"] = report
        return
    reports = [report, *_WORKER_FRAMES]
    seen = sum(int(r["seen"]) for r in reports)
    if not seen:
        return
    shapes = {shape for r in reports for shape in r["shapes"]}
    problems = [line for r in reports for line in r["problems"]]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"server frames checked against the AsyncAPI document: {seen} frames,"
            f" {len(shapes)} shapes, {len(problems)} problems"
        )
        for line in problems:
            reporter.write_line("  " + line, red=True)
    if problems:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """This run's database (created and migrated here, dropped at the end) and Redis key prefix."""
    found = provision()
    yield found
    found.close()


@pytest.fixture
def settings(services: Services, tmp_path: Path) -> Settings:
    """Settings for an app of this run: real PostgreSQL and Redis, workers off, generous API limits."""
    return Settings(
        env="dev",
        database_url=services.dsn,
        redis_url=services.redis_url,
        redis_prefix=services.redis_prefix,
        jwt_secret=TEST_JWT_SECRET,
        data_dir=tmp_path,
        run_workers=False,
        api_rate_per_ip=1_000_000,
        api_rate_per_user=1_000_000,
        # Every test logs in from 127.0.0.1 within one Redis prefix per test process: the per-IP
        # hourly login-code limit is tested on its own (tests/rest/test_auth.py), not shared.
        otp_sends_per_ip=1_000_000,
    )


class DoorTestServer(TestServer):
    """A test server that accepts connections through hub.door, as the web process does."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return Runner(self.app, **kwargs)


@pytest.fixture
def aiohttp_client(aiohttp_client: Any) -> Callable[..., Any]:
    """pytest-aiohttp's client factory, with applications served through hub.door."""

    async def go(app_or_server: web.Application | BaseTestServer, **kwargs: Any) -> Any:
        if isinstance(app_or_server, web.Application):
            app_or_server = DoorTestServer(app_or_server, **(kwargs.pop("server_kwargs", None) or {}))
        return await aiohttp_client(app_or_server, **kwargs)

    return go


@pytest.fixture
def make_app(settings: Settings) -> Callable[..., web.Application]:
    """Build a whole web app; keyword arguments override settings fields."""

    def build(**overrides: Any) -> web.Application:
        s = settings.with_(**overrides) if overrides else settings
        assert s.database_url is not None
        return compose_app(s, s.database_url)

    return build


@pytest.fixture
async def client(aiohttp_client: Any, make_app: Callable[..., web.Application]) -> TestClient[Any, Any]:
    """A test client of one whole web app over real loopback HTTP."""
    result: TestClient[Any, Any] = await aiohttp_client(make_app())
    return result


@pytest.fixture
async def pool(services: Services) -> AsyncIterator[asyncpg.Pool]:
    """A pool on this run's database, for arranging and checking rows directly."""
    p = await create_pool(services.dsn, min_size=1, max_size=10)
    yield p
    await p.close()


@pytest.fixture(autouse=True)
def ledger_invariants(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that used the database: the ledger holds (domain.ledger.audit: balances sum to
    zero per currency, stored balances equal their transfers, no wallet or escrow below zero, users'
    money columns equal the ledger, each opened order's escrow matches its escrowState). Skipped when
    the ledger tables are absent. Runs in its own thread and loop, whatever the test's loop was."""
    yield
    if "services" not in request.fixturenames:
        return
    dsn = request.getfixturevalue("services").dsn

    async def check() -> list[str]:
        conn = await asyncpg.connect(dsn)
        try:
            if await conn.fetchval("SELECT to_regclass('ledger_accounts')") is None:
                return []
            from domain.ledger import audit

            return await audit(conn)
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        problems = executor.submit(asyncio.run, check()).result()
    assert not problems, "ledger invariants broken after this test:\n" + "\n".join(problems)
