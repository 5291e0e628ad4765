"""Starting the web process as a new user would: a port already taken ends it with one line."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from hub.door import ListenError, check_port, serve_app
from tests.conftest import TEST_JWT_SECRET
from tests.services import Services

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port another socket listens on for the test's duration."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_busy_port_ends_the_web_process_with_one_line(
    held_port: int, services: Services, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LOG_LEVEL")}
    env.update(
        GIGWIRE_ENV="dev",
        GIGWIRE_DATA_DIR=str(tmp_path),
        DATABASE_URL=services.dsn,  # were the early check missing, no embedded PostgreSQL starts
        JWT_SECRET=TEST_JWT_SECRET,
        HOST="127.0.0.1",
        PORT=str(held_port),
    )
    command = [sys.executable, "-m", "hub"]
    done = subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout == ""  # in particular no "listening"
    assert done.stderr.splitlines() == [
        f"gigwire: port {held_port} is in use on 127.0.0.1; set PORT to another port"
    ]


def test_check_port_accepts_a_free_port_and_refuses_a_held_one(held_port: int) -> None:
    with pytest.raises(ListenError) as info:
        check_port("127.0.0.1", held_port)
    assert str(info.value) == f"port {held_port} is in use on 127.0.0.1; set PORT to another port"
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = int(free.getsockname()[1])
    check_port("127.0.0.1", port)


def test_a_port_taken_after_the_check_fails_the_bind_cleanly(held_port: int) -> None:
    """Another process may take the port between the check and the bind: the site's bind failure
    is the same one-line ListenError, raised after the app's cleanup, and nothing says listening."""
    cleaned: list[bool] = []
    heard: list[bool] = []

    async def context(app: web.Application) -> AsyncIterator[None]:
        yield
        cleaned.append(True)

    app = web.Application()
    app.cleanup_ctx.append(context)
    try:
        with pytest.raises(ListenError) as info:
            serve_app(app, "127.0.0.1", held_port, on_listening=lambda: heard.append(True))
    finally:
        asyncio.set_event_loop(None)
    assert "in use" in str(info.value)
    assert cleaned == [True] and heard == []
