"""Hostile-input fixtures: the whole web app served through hub.door from its own thread (so that
hypothesis, which drives sync functions only, can call it), a raw HTTP/1.1 client that sends bytes
exactly as given, the rows a hostile caller aims at (live ones, deleted ones), and the check that
the server's error log stays empty."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from hub.__main__ import compose_app
from hub.db import create_pool
from hub.door import Runner
from hub.settings import Settings
from tests.factories import TestUser, make_order, make_user, open_test_order
from tests.services import free_port

# Loggers whose ERROR records mean the server failed (a client's bad input must not produce one).
SERVER_LOGGERS = ("gigwire", "aiohttp", "asyncio", "socketio", "engineio")


class LiveServer:
    """The whole web app, served through hub.door on a loopback port by a thread's event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: Runner | None = None

    @property
    def app(self) -> web.Application:
        assert self.runner is not None
        return self.runner.app

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _start(self) -> None:
        assert self.settings.database_url is not None
        self.runner = Runner(compose_app(self.settings, self.settings.database_url), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    @staticmethod
    async def _cancel_leftovers() -> None:
        """Cancel what the libraries left running (Engine.IO's ping timers sleep 25 s): a task
        destroyed pending later would be logged at ERROR during the next test."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def run(self, coro: Any, timeout: float = 60) -> Any:
        """Run `coro` on the server's loop (clients run there too) and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        self.run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None:
            self.run(self.runner.cleanup())
        self.run(self._cancel_leftovers())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def http(
        self, method: str, target: bytes, headers: Mapping[str, bytes], body: bytes | None = None
    ) -> Reply:
        """Send one request (its bytes as given) on a fresh connection; the server's answer."""
        return self.run(raw_http(self.port, method, target, headers, body))  # type: ignore[no-any-return]


@dataclass
class Reply:
    """One HTTP answer as read off the wire."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def raw_http(
    port: int, method: str, target: bytes, headers: Mapping[str, bytes], body: bytes | None
) -> Reply:
    """HTTP/1.1 with `Connection: close`: the request line and headers written byte for byte (no
    encoding, no validation), the answer read to EOF. An answer the server never gives is status 0."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    head += [name.encode() + b": " + value for name, value in headers.items()]
    if body is not None:
        head.append(b"Content-Length: " + str(len(body)).encode())
    try:
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + (body or b""))
        async with asyncio.timeout(20):
            await writer.drain()
            data = await reader.read()
    except ConnectionError:
        data = b""
    finally:
        writer.close()
    return parse_reply(data)


def parse_reply(data: bytes) -> Reply:
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1."):
        return Reply(0, {}, data)
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            body += rest[:size]
            rest = rest[size + 2 :]
        rest = body
    return Reply(status, headers, rest)


@dataclass
class World:
    """The rows hostile requests aim at. `user` owns a live gig (with `other`'s pending application),
    is the client of a live order with `other`, and has a notification and a device; the `deleted_*`
    ids named rows that were created and then deleted in SQL; `deleted_user`'s token is still
    validly signed."""

    user: TestUser
    other: TestUser
    deleted_user: TestUser
    admin: TestUser
    gig_id: str
    application_id: str
    order_id: str
    notification_id: str
    device_token: str
    deleted: dict[str, str] = field(default_factory=dict)
    media: list[str] = field(default_factory=list)
    """Media rows (no bytes stored): the user's ID document and avatar."""

    @property
    def ids(self) -> list[str]:
        """Every id here, live and deleted (a hostile caller's best guesses)."""
        live = [
            self.user.id,
            self.other.id,
            self.gig_id,
            self.application_id,
            self.order_id,
            self.notification_id,
        ]
        return live + self.media + list(self.deleted.values())


async def build_world(settings: Settings) -> World:
    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        user = await make_user(pool, settings)
        other = await make_user(pool, settings)
        admin = await make_user(pool, settings, roles=("admin", "client", "doer"))
        gone = await make_user(pool, settings)
        await pool.execute("DELETE FROM users WHERE id = $1", gone.id)
        order_id = await open_test_order(pool, user, other)
        gig_id = await pool.fetchval(
            "INSERT INTO gigs (client_id, title, description, category, skills, budget_min, budget_max,"
            " deadline, status) VALUES ($1, 'Hostile target', 'A gig', 'design', '{photoshop}', 1000, 5000,"
            " now() + interval '7 days', 'open') RETURNING id::text",
            user.id,
        )
        application_id = await pool.fetchval(
            "INSERT INTO applications (gig_id, doer_id, proposal, bid_amount) VALUES ($1, $2, 'Me', 2000)"
            " RETURNING id::text",
            gig_id,
            other.id,
        )
        notify = (
            "INSERT INTO notifications (user_id, type, title, body) VALUES ($1, 'system', 'Hi', 'Body')"
            " RETURNING id::text"
        )
        notification_id = await pool.fetchval(notify, user.id)
        device_token = "hostile-device-token-" + user.id
        await pool.execute(
            "INSERT INTO devices (token, user_id, platform) VALUES ($1, $2, 'android')", device_token, user.id
        )
        # Rows created, then deleted in SQL: their ids name nothing now.
        dead_order = await make_order(
            pool, user, other, status="pending_payment", escrow_state="awaiting_payment"
        )
        row = await pool.fetchrow(
            "SELECT gig_id::text, application_id::text FROM orders WHERE id = $1", dead_order
        )
        assert row is not None
        dead_gig, dead_app = str(row[0]), str(row[1])
        await pool.execute("DELETE FROM orders WHERE id = $1", dead_order)
        await pool.execute("DELETE FROM applications WHERE id = $1", dead_app)
        await pool.execute("DELETE FROM gigs WHERE id = $1", dead_gig)
        dead_note = await pool.fetchval(notify, user.id)
        await pool.execute("DELETE FROM notifications WHERE id = $1", dead_note)
        media = [
            await pool.fetchval(
                "INSERT INTO media (owner_id, kind, content_type, size, sha256)"
                " VALUES ($1, $2, 'image/png', 1, 'x') RETURNING id::text",
                user.id,
                kind,
            )
            for kind in ("id_document", "avatar")
        ]
        deleted = {
            "user": gone.id,
            "order": dead_order,
            "gig": dead_gig,
            "application": dead_app,
            "notification": dead_note,
        }
        return World(
            user,
            other,
            gone,
            admin,
            gig_id,
            application_id,
            order_id,
            notification_id,
            device_token,
            deleted,
            media,
        )
    finally:
        await pool.close()


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    """The app as a dev deployment makes it (sandbox gateway keys set, so webhooks are on)."""
    dev = settings.with_(
        razorpay_key_secret="sandbox-key-secret", razorpay_webhook_secret="sandbox-webhook-secret"
    )
    with LiveServer(dev) as server:
        yield server


@pytest.fixture
def world(live: LiveServer) -> World:
    return live.run(build_world(live.settings))  # type: ignore[no-any-return]


def server_errors(records: list[logging.LogRecord], ignore: tuple[str, ...] = ()) -> list[str]:
    """The ERROR (or worse) records of the server's loggers, each as its logger, message and
    exception; records whose message contains a string of `ignore` are left out."""
    found = []
    for record in records:
        if record.name.endswith(".client"):  # the tests' own Socket.IO client, not the server
            continue
        if record.levelno >= logging.ERROR and record.name.split(".")[0] in SERVER_LOGGERS:
            if any(text in record.getMessage() for text in ignore):
                continue
            exc = record.exc_info[1] if record.exc_info else None
            found.append(f"{record.name}: {record.getMessage()} {type(exc).__name__ if exc else ''}: {exc}")
    return found


_PARAM = re.compile(r"\(\?P<(\w+)>([^()]*)\)")


@dataclass(frozen=True)
class Route:
    """One route of the live router: its method, its path with parameters, and for each parameter
    either None (free: fuzzed) or the literal it must be (e.g. the `action` of an order route)."""

    method: str
    template: str
    params: tuple[tuple[str, str | None], ...]

    @property
    def path(self) -> str:
        """The path with literal parameters filled in (e.g. /api/orders/{id}/cancel)."""
        path = self.template
        for name, literal in self.params:
            if literal is not None:
                path = path.replace("{" + name + "}", literal)
        return path

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def live_routes(app: web.Application) -> list[Route]:
    """Every route of the app's router but HEAD (aiohttp answers it with the GET handler)."""
    found = []
    for route in app.router.routes():
        if route.method in ("HEAD", "*") or route.resource is None:
            continue
        info = route.resource.get_info()
        params: list[tuple[str, str | None]] = []
        pattern = info.get("pattern")
        if pattern is not None:
            for name, regex in _PARAM.findall(pattern.pattern):
                literal = None if regex == "[^{}/]+" else re.sub(r"\\(.)", r"\1", regex)
                params.append((name, literal))
        found.append(Route(route.method, route.resource.canonical, tuple(params)))
    return found
