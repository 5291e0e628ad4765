"""The parts a fault test breaks, each its own: a private PostgreSQL cluster (pgserver's binaries,
initdb + pg_ctl under a temp dir, on a loopback port) that may be stopped, restarted and started,
and web processes (`python -m hub`) as production starts them, their JSON logs kept in a file.
Never the shared PostgreSQL or Redis of the test run: those are not ours to restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.conftest import TEST_JWT_SECRET
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own. `stop(mode)` is pg_ctl's (`fast` disconnects every
    session, `immediate` is a crash); `start` waits until it accepts connections."""

    def __init__(self, max_connections: int = 60) -> None:
        from pgserver._commands import POSTGRES_BIN_PATH

        self.bin = Path(POSTGRES_BIN_PATH)
        self.root = Path(tempfile.mkdtemp(prefix="gigwire-pgfault-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.max_connections = max_connections
        # PostgreSQL refuses to run as root: as root, run it as the `postgres` account.
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user is not None:
            shutil.chown(self.root, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")

    def _run(self, tool: str, *args: str) -> None:
        # Output to a file, not a pipe: the server pg_ctl starts inherits it, and a pipe would be
        # waited on until the server exits.
        with tempfile.TemporaryFile() as out:
            done = subprocess.run(
                [str(self.bin / tool), *args], check=False, user=self.user, stdout=out, stderr=out, timeout=90
            )
            if done.returncode != 0:
                out.seek(0)
                raise RuntimeError(f"{tool} failed: {out.read()[-500:].decode(errors='replace')}")

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
            f" -c max_connections={self.max_connections}"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.root / "log"),
            "-o",
            options,
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", mode, "stop")

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class WebProcess:
    """`python -m hub` with this test's settings; stdout and stderr (JSON log lines) go to a file."""

    def __init__(self, tmp: Path, name: str, dsn: str, redis_url: str | None, **extra: str) -> None:
        self.port = free_port()
        self.name = name
        self.log_path = tmp / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LOG_LEVEL", "DATABASE_URL")}
        env.update(
            GIGWIRE_ENV="dev",
            GIGWIRE_DATA_DIR=str(tmp / name),
            DATABASE_URL=dsn,
            JWT_SECRET=TEST_JWT_SECRET,
            HOST="127.0.0.1",
            PORT=str(self.port),
            RUN_WORKERS="0",
            LOG_LEVEL="INFO",
            API_RATE_PER_IP="1000000",
            API_RATE_PER_USER="1000000",
            **extra,
        )
        if redis_url is not None:
            env["REDIS_URL"] = redis_url
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub"], cwd=ROOT, env=env, stdout=log, stderr=log
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def ready(self, within: float = 60.0) -> None:
        """Until GET /healthz answers 200."""
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, f"{self.name} exited: {self.tail()}"
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(self.url + "/healthz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} did not start: {self.tail()}")

    async def sigterm(self, within: float) -> tuple[int | None, float]:
        """SIGTERM; (exit code or None if still running after `within` s, seconds taken)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        while self.proc.poll() is None and time.monotonic() - started < within:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return self.proc.poll(), time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def records(self) -> list[dict[str, Any]]:
        """The log's JSON records (the banner lines on stdout are skipped)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                out.append(orjson.loads(line))
            else:
                assert line.startswith("gigwire "), f"{self.name}: a log line that is not JSON: {line[:300]}"
        return out

    def errors(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["level"] in ("error", "critical")]

    def tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])
