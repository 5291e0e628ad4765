"""The baseline of the side-by-side benchmark: python-socketio's `AsyncServer` on aiohttp with
`AsyncRedisManager`, written as its documentation shows. Every client joins the room `bench` on
connect; messages come from an outside publisher through `AsyncRedisManager(write_only=True)`.

    .venv/bin/python -m bench.compare.sio_server --port 9001 --redis redis://127.0.0.1:6379/0 --channel c
"""

from __future__ import annotations

import argparse
import resource
from typing import Any

import socketio
from aiohttp import web


def build(redis_url: str, channel: str) -> web.Application:
    """The aiohttp app with the Socket.IO server attached at /socket.io/."""
    manager = socketio.AsyncRedisManager(redis_url, channel=channel)
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager, cors_allowed_origins="*")

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        await sio.enter_room(sid, "bench")

    sio.on("connect", connect)  # what the `@sio.event` decorator does

    app = web.Application()
    sio.attach(app)
    app.router.add_get("/healthz", lambda request: _ok())
    return app


async def _ok() -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--channel", required=True)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    web.run_app(
        build(args.redis, args.channel), host="127.0.0.1", port=args.port, print=None, access_log=None
    )


if __name__ == "__main__":
    main()
