"""The web process: `python -m hub [serve|migrate|grant-admin PHONE|api-key ...]`.

This module composes the web process from hub, rest and workers; nothing else in hub imports them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import sys
from collections.abc import Callable

import asyncpg
from aiohttp import web

import rest
import workers
from hub import db, gc_tune
from hub.app import build_core_app
from hub.demo import setup_demo
from hub.door import ListenError, check_port, serve_app
from hub.embedded import EmbeddedPostgres
from hub.logs import setup_logging
from hub.nodes import setup_nodes
from hub.realtime import setup_realtime
from hub.settings import Settings, SettingsError
from hub.transport_sio import setup_socketio
from rest.api_keys_cli import add_key_commands, run_key_command

log = logging.getLogger("gigwire")

# Later pieces of the web process (the realtime hub, the Socket.IO transport) register here.
EXTENSIONS: list[Callable[[web.Application], None]] = []
EXTENSIONS.append(setup_realtime)  # /ws, /metrics and the hub's start/stop (hub/realtime.py)
EXTENSIONS.append(setup_demo)  # GET /demo, the browser demo client
EXTENSIONS.append(setup_socketio)  # /socket.io/, the hub's Socket.IO transport (after setup_realtime)
EXTENSIONS.append(setup_nodes)  # this node's beacon in the Store, for GET /api/server/stats


def compose_app(settings: Settings, dsn: str) -> web.Application:
    """The whole web process: core state and health, realtime hub, REST API, and, when
    `settings.run_workers`, the workers inside the process."""
    app = build_core_app(settings, dsn)
    for extend in EXTENSIONS:
        extend(app)
    rest.setup(app)
    if settings.run_workers:
        workers.embed(app)
    return app


def _raise_fd_limit() -> None:
    """Lift the open-file limit to its hard maximum: every connection is a file descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _database(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    if settings.database_url is not None:
        return settings.database_url, None
    embedded = EmbeddedPostgres(settings.data_dir)
    return embedded.start(), embedded


def _listening(line: str, settings: Settings) -> None:
    # Startup has built the app and its pools: freeze them out of every later collection.
    gc_tune.settle(settings.gc_threshold)
    print(line, flush=True)


def serve(settings: Settings) -> None:
    """Run the web process until SIGINT/SIGTERM, then stop within SHUTDOWN_TIMEOUT seconds (close
    connections, cancel what is left, abandon what ignores cancellation; hub.lifecycle). Raises
    ListenError when HOST:PORT cannot be bound: before anything starts, or after the app's cleanup
    when another process took the port meanwhile."""
    _raise_fd_limit()
    check_port(settings.host, settings.port)
    dsn, embedded = _database(settings)
    try:
        if settings.is_dev or settings.embedded_db:
            applied = asyncio.run(db.migrate_dsn(dsn))
            if applied:
                log.info("migrations applied", extra={"applied": applied})
        app = compose_app(settings, dsn)
        shown = "localhost" if settings.host in ("0.0.0.0", "::") else settings.host
        where = f"http://{shown}:{settings.port}"
        mode = "embedded PostgreSQL" if embedded else "PostgreSQL"
        broker = "Redis" if settings.redis_url else "in-process broker"
        listening = f"gigwire listening on {where} ({settings.env} mode, {mode}, {broker}); Ctrl-C stops it"
        stopped = serve_app(
            app,
            settings.host,
            settings.port,
            shutdown_timeout=settings.shutdown_timeout,
            on_listening=lambda: _listening(listening, settings),
        )
    finally:
        if embedded is not None:
            embedded.stop()
    print("gigwire stopped", flush=True)
    if not stopped.clean:
        # Abandoned tasks or executor threads may never end: exiting normally would join them.
        logging.shutdown()
        sys.stderr.flush()
        os._exit(0)


async def _grant_admin(dsn: str, phone: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        status: str = await conn.execute(
            "UPDATE users SET roles = array_append(roles, 'admin') "
            "WHERE phone = $1 AND NOT ('admin' = ANY(roles))",
            phone,
        )
        exists = await conn.fetchval("SELECT 1 FROM users WHERE phone = $1", phone)
        return status is not None and bool(exists)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub", description="gigwire web process")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve HTTP, /ws and /socket.io/ (the default)")
    sub.add_parser("migrate", help="apply pending migrations and exit")
    grant = sub.add_parser("grant-admin", help="give the admin role to the user with this phone")
    grant.add_argument("phone", help="E.164 phone number, e.g. +919876543210")
    sub.add_parser("demo-seed", help="dev mode: two demo users and a funded order between them, for /demo")
    keys = sub.add_parser("api-key", help="server API keys: create, list, revoke")
    add_key_commands(keys)
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"gigwire: bad configuration: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)

    command = args.command or "serve"
    if command == "serve":
        try:
            serve(settings)
        except ListenError as exc:
            print(f"gigwire: {exc}", file=sys.stderr)
            return 1
        return 0
    dsn, embedded = _database(settings)
    try:
        if command == "migrate":
            applied = asyncio.run(db.migrate_dsn(dsn))
            print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
            return 0
        asyncio.run(db.migrate_dsn(dsn))
        if command == "api-key":
            return asyncio.run(run_key_command(dsn, args))
        if command == "demo-seed":
            from rest.demo_seed import run_cli

            return asyncio.run(run_cli(dsn, settings))
        if not asyncio.run(_grant_admin(dsn, args.phone)):
            print(f"gigwire: no user with phone {args.phone}; they must log in once first", file=sys.stderr)
            return 1
        print(f"{args.phone} is an admin")
        return 0
    finally:
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    sys.exit(main())
