"""Fan-out benchmark of the Socket.IO transport: N python-socketio subscribers of one order, spread
over two `python -m hub` processes sharing Redis; one raw /ws sender on the first process (so every
delivery also crosses transports). Reports deliveries per second and the send-to-deliver latency
(sender's send to subscriber's event handler, same clock) at p50/p99, paced and in a burst.

    .venv/bin/python -m bench.sio_fanout --subscribers 100 --rate 100 --seconds 3 --burst 1000
    .venv/bin/python -m bench.sio_fanout --client python-socketio   # the stock Python client instead

Same needs as bench/ws_fanout.py (whose node start-up, sender and summary it reuses): PostgreSQL on
127.0.0.1:5432 (a scratch database, dropped at the end) and Redis on 127.0.0.1:6379 (a unique key
prefix). Both hub processes are stopped at the end."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import subprocess
import time
import uuid
from typing import Any

import aiohttp
import asyncpg
import orjson
import socketio

from bench.ws_fanout import ADMIN_DSN, REDIS_URL, connect, phase, start_node, summary
from hub.db import create_pool, migrate_dsn
from hub.settings import Settings
from tests.factories import make_order, make_user
from tests.services import free_port


class Subscriber:
    """One subscriber of the order, timing each CHAT_MESSAGE it receives (same clock as the sender)."""

    def __init__(self) -> None:
        self.expected = 0
        self.latencies_ns: list[int] = []
        self.last_seq = 0
        self.out_of_order = 0
        self.done = asyncio.Event()

    def record(self, data: dict[str, Any]) -> None:
        now = time.perf_counter_ns()
        if data["seq"] != self.last_seq + 1:
            self.out_of_order += 1
        self.last_seq = data["seq"]
        self.latencies_ns.append(now - int(data["text"].split(":", 1)[1]))
        if len(self.latencies_ns) >= self.expected:
            self.done.set()

    async def start(self, http: aiohttp.ClientSession, port: int, token: str, order_id: str) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError


class PySocketIOSubscriber(Subscriber):
    """python-socketio's AsyncClient: the stock client, whose own cost shares this process's CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.client = socketio.AsyncClient(reconnection=False)

        async def on_message(data: dict[str, Any]) -> None:
            self.record(data)

        self.client.on("CHAT_MESSAGE", on_message)

    async def start(self, http: aiohttp.ClientSession, port: int, token: str, order_id: str) -> None:
        await self.client.connect(f"http://127.0.0.1:{port}", auth={"token": token}, transports=["websocket"])
        ack = await self.client.call("SUBSCRIBE_CHAT", {"orderId": order_id}, timeout=10)
        assert "error" not in ack, ack

    async def stop(self) -> None:
        await self.client.disconnect()


class WireSubscriber(Subscriber):
    """A minimal Engine.IO v4 / Socket.IO v5 WebSocket client (orjson, no per-event task), so the
    figures measure the server's Socket.IO path rather than a heavy client in the same process."""

    def __init__(self) -> None:
        super().__init__()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None

    async def start(self, http: aiohttp.ClientSession, port: int, token: str, order_id: str) -> None:
        ws = await http.ws_connect(
            f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", max_msg_size=0
        )
        assert (await ws.receive_str()).startswith("0")  # Engine.IO OPEN
        await ws.send_str("40" + orjson.dumps({"token": token}).decode())
        assert (await ws.receive_str()).startswith("40")  # Socket.IO CONNECT
        assert (await ws.receive_str()).startswith('42["AUTHENTICATED"')
        await ws.send_str("421" + orjson.dumps(["SUBSCRIBE_CHAT", {"orderId": order_id}]).decode())
        assert (await ws.receive_str()).startswith("431")  # the ack
        self.ws = ws
        self.reader = asyncio.create_task(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            text = msg.data
            if text == "2":
                await ws.send_str("3")  # Engine.IO heartbeat
            elif text.startswith('42["CHAT_MESSAGE"'):
                self.record(orjson.loads(text[2:])[1])

    async def stop(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.ws is not None:
            await self.ws.close()


async def main(args: argparse.Namespace) -> None:
    database = f"gigwire_bench_{uuid.uuid4().hex[:8]}"
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + database
    prefix = f"gwbench:{uuid.uuid4().hex[:8]}:"
    secret = secrets.token_urlsafe(48)
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    procs: list[subprocess.Popen[bytes]] = []
    subs: list[Subscriber] = []
    try:
        await migrate_dsn(dsn)
        settings = Settings(jwt_secret=secret)
        pool = await create_pool(dsn, min_size=1, max_size=2)
        client, doer = await make_user(pool, settings), await make_user(pool, settings)
        order_id = await make_order(pool, client, doer)
        await pool.close()
        ports = [free_port(), free_port()]
        procs = list(await asyncio.gather(*(start_node(p, dsn, prefix, secret) for p in ports)))
        # limit=0: one session holds every subscriber's connection (aiohttp's default caps it at 100).
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            sender = await connect(http, ports[0], client.token, order_id)
            sender_reader = asyncio.create_task(_drain(sender))
            kind = WireSubscriber if args.client == "wire" else PySocketIOSubscriber
            for i in range(args.subscribers):
                sub = kind()
                await sub.start(http, ports[i % 2], (client if i % 2 else doer).token, order_id)
                subs.append(sub)
            print(
                f"two hub processes on ports {ports}, {len(subs)} Socket.IO subscribers"
                f" ({args.client} client, half on each process),"
                f" raw /ws sender, Redis {REDIS_URL}"
            )
            paced = int(args.rate * args.seconds)
            elapsed, lat = await phase(sender, subs, order_id, paced, args.rate, timeout_s=180)
            print(summary(f"paced {args.rate:.0f} msg/s", paced, len(subs), elapsed, lat))
            elapsed, lat = await phase(sender, subs, order_id, args.burst, None, timeout_s=180)
            print(summary("burst", args.burst, len(subs), elapsed, lat))
            print(f"out-of-order deliveries: {sum(s.out_of_order for s in subs)}")
            sender_reader.cancel()
    finally:
        for sub in subs:
            await sub.stop()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def _drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Read and drop the sender's own copies, so its socket never backs up."""
    async for _ in ws:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=100.0, help="messages a second in the paced phase")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the paced phase")
    parser.add_argument(
        "--burst", type=int, default=1000, help="messages sent back to back in the burst phase"
    )
    parser.add_argument(
        "--client",
        choices=("wire", "python-socketio"),
        default="wire",
        help="subscriber client: a minimal Socket.IO wire client (default) or python-socketio's AsyncClient",
    )
    asyncio.run(main(parser.parse_args()))
