"""Issue 13, defects 1 and 2: after a few thousand malformed Engine.IO / Socket.IO packets the web
process still stops within SHUTDOWN_TIMEOUT of SIGTERM, exit code 0, and its log holds no ERROR, no
traceback and only a few rate-limited warning lines. And the bound holds whatever a task does."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from hub.lifecycle import run_bounded
from tests.conftest import TEST_JWT_SECRET
from tests.malformed_sio import flood
from tests.services import Services, free_port

ROOT = Path(__file__).resolve().parents[1]
BOUND_S = 5
SLACK_S = 3.0  # interpreter exit and the test's own polling, on a loaded machine
MAX_WARNINGS = 30


class WebProcess:
    """`python -m hub` as production starts it, its stdout and stderr collected."""

    def __init__(self, services: Services, tmp_path: Path, **extra: str) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LOG_LEVEL")}
        env.update(
            GIGWIRE_ENV="dev",
            GIGWIRE_DATA_DIR=str(tmp_path),
            DATABASE_URL=services.dsn,
            JWT_SECRET=TEST_JWT_SECRET,
            HOST="127.0.0.1",
            PORT=str(self.port),
            RUN_WORKERS="0",
            LOG_LEVEL="INFO",
            **extra,
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.listening = threading.Event()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line.rstrip("\n"))
            if "listening on" in line:
                self.listening.set()

    def stop(self, timeout: float) -> tuple[int | None, float]:
        """SIGTERM, then the exit code (None: still running after `timeout`) and seconds taken."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        taken = time.monotonic() - started
        for reader in self._readers:
            reader.join(5)
        return code, taken

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def web(services: Services, tmp_path: Path) -> Iterator[WebProcess]:
    process = WebProcess(services, tmp_path, SHUTDOWN_TIMEOUT=str(BOUND_S))
    try:
        assert process.listening.wait(60), (process.stdout, process.stderr[-20:])
        yield process
    finally:
        process.kill()


def test_sigterm_after_malformed_socketio_traffic_stops_within_the_bound_without_errors(
    web: WebProcess,
) -> None:
    sent = asyncio.run(flood(web.port, total=3000))
    assert sent.total >= 2000, sent
    code, taken = web.stop(BOUND_S + SLACK_S + 60)
    assert code == 0, (code, web.stderr[-20:])
    assert taken <= BOUND_S + SLACK_S, f"stopped {taken:.1f} s after SIGTERM (bound {BOUND_S} s)"
    assert web.stdout[-1] == "gigwire stopped"

    records = []
    for line in web.stderr:
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            pytest.fail(f"a log line that is not JSON (a library's own handler?): {line[:300]}")
    errors = [r for r in records if r["level"] in ("error", "critical")]
    assert not errors, errors[:5]
    assert not [r for r in records if "exc" in r or "Traceback" in r["msg"]]
    warnings = [r for r in records if r["level"] == "warning"]
    assert len(warnings) < MAX_WARNINGS, [w["msg"] for w in warnings]
    assert any(w.get("clientFault") for w in warnings), "the client faults were not reported at all"


def test_a_task_that_ignores_cancellation_is_abandoned_at_the_bound() -> None:
    """The shutdown bound holds whatever the libraries do: a task swallowing every cancellation
    (as engineio's service task does) is abandoned, named in one warning, and the loop closed."""
    swallowed = []

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed.append(True)

    async def serve(stop: asyncio.Event) -> None:
        asyncio.get_running_loop().create_task(stubborn(), name="stubborn")
        asyncio.get_running_loop().call_later(0.1, stop.set)  # as SIGTERM would
        try:
            await stop.wait()
        finally:
            await asyncio.sleep(3600)  # a shutdown step that never ends

    started = time.monotonic()
    stopped = run_bounded(serve, timeout=2.0)
    taken = time.monotonic() - started
    assert taken < 2.0 + 0.1 + 1.0, taken
    assert not stopped.clean
    assert swallowed and any("stubborn" in name for name in stopped.abandoned), stopped


def test_a_clean_stop_is_clean() -> None:
    async def serve(stop: asyncio.Event) -> None:
        asyncio.get_running_loop().call_later(0.05, stop.set)
        await stop.wait()

    stopped = run_bounded(serve, timeout=5.0)
    assert stopped.clean and not stopped.abandoned and stopped.seconds < 1.0
