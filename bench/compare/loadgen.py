"""The load generator of the side-by-side benchmark: one process holding many WebSocket clients,
driven by the runner through JSON lines on stdin/stdout. The same lean client for both systems:
aiohttp WebSocket connections; for gigwire docs/protocol.md over `/ws`, for python-socketio the
Engine.IO 4 / Socket.IO 5 protocol spoken by hand over `/socket.io/?EIO=4&transport=websocket`
(open packet, "40" to join the namespace, "2" pings answered with "3", `42[...]` events).

Every benchmark message carries `"t":<monotonic ns at publish>` as its last field; a client finds it
with two string searches (no JSON parse) and records the delivery latency. CLOCK_MONOTONIC is one
clock for every process of the machine.

Commands (one JSON object a line; each answered by one JSON line):
  {"cmd": "connect", "count": n, "system": "gigwire"|"sio", "ports": [...], "tokens": [...],
   "order": id, "local_addrs": [...], "concurrency": c, "timeout": s}
  {"cmd": "drop", "count": n}         close n connections
  {"cmd": "reset"}                    zero the counters, start recording latencies
  {"cmd": "quiet", "gap": s, "timeout": s}
                                       wait until nothing arrived for `gap` seconds (bounded)
  {"cmd": "report", "expected": m, "timeout": s}
                                       wait until every connection has m messages (bounded), then
                                       answer counts, first/last receipt and the latencies (us)
  {"cmd": "quit"}
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from typing import Any

import aiohttp
import orjson

_T = '"t":'


class Conn:
    """One client connection and its receive loop."""

    __slots__ = ("count", "task", "ws")

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.count = 0
        self.task: asyncio.Task[None] | None = None


class Generator:
    """The connections of this process and what they received."""

    def __init__(self) -> None:
        self.conns: list[Conn] = []
        self.sessions: list[aiohttp.ClientSession] = []
        self.latencies: list[int] = []
        self.first = 0
        self.last = 0
        self.seen = 0  # the last receipt ever, across resets
        self.record = False

    def _receipt(self, conn: Conn, text: str) -> None:
        at = text.rfind(_T)
        if at < 0:
            return
        now = self.seen = time.monotonic_ns()
        conn.count += 1
        if not self.first:
            self.first = now
        self.last = now
        if self.record:
            end = text.find("}", at)
            self.latencies.append((now - int(text[at + 4 : end])) // 1000)

    async def _read_gigwire(self, conn: Conn) -> None:
        ws = conn.ws
        while True:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return
            self._receipt(conn, msg.data)

    async def _read_sio(self, conn: Conn) -> None:
        ws = conn.ws
        while True:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return
            data: str = msg.data
            if data.startswith("42"):
                self._receipt(conn, data)
            elif data == "2":
                await ws.send_str("3")

    async def _open(
        self, session: aiohttp.ClientSession, system: str, port: int, token: str, order: str
    ) -> Conn:
        if system == "gigwire":
            ws = await session.ws_connect(
                f"http://127.0.0.1:{port}/ws?token={token}", autoping=True, max_msg_size=0
            )
            hello = orjson.loads((await ws.receive(timeout=30)).data)
            if hello.get("type") != "AUTHENTICATED":
                raise RuntimeError(f"not authenticated: {hello}")
            await ws.send_str(
                orjson.dumps({"type": "SUBSCRIBE_CHAT", "data": {"orderId": order}, "ref": "s"}).decode()
            )
            while True:
                frame = orjson.loads((await ws.receive(timeout=30)).data)
                if frame.get("ref") == "s":
                    if frame.get("type") != "ACK":
                        raise RuntimeError(f"not subscribed: {frame}")
                    break
            conn = Conn(ws)
            conn.task = asyncio.create_task(self._read_gigwire(conn))
        else:
            ws = await session.ws_connect(
                f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", max_msg_size=0
            )
            opened = (await ws.receive(timeout=30)).data
            if not isinstance(opened, str) or not opened.startswith("0"):
                raise RuntimeError(f"no Engine.IO open packet: {opened!r}")
            await ws.send_str("40")
            joined = (await ws.receive(timeout=30)).data
            if not isinstance(joined, str) or not joined.startswith("40"):
                raise RuntimeError(f"namespace not joined: {joined!r}")
            conn = Conn(ws)
            conn.task = asyncio.create_task(self._read_sio(conn))
        return conn

    async def connect(self, cmd: dict[str, Any]) -> dict[str, Any]:
        count: int = cmd["count"]
        ports: list[int] = cmd["ports"]
        tokens: list[str] = cmd.get("tokens") or [""]
        addrs: list[str] = cmd["local_addrs"]
        while len(self.sessions) < len(addrs):
            addr = addrs[len(self.sessions)]
            connector = aiohttp.TCPConnector(limit=0, local_addr=(addr, 0), force_close=True)
            self.sessions.append(aiohttp.ClientSession(connector=connector))
        gate = asyncio.Semaphore(cmd.get("concurrency", 64))
        failed = 0
        errors: list[str] = []
        base = len(self.conns)

        async def one(i: int) -> None:
            nonlocal failed
            n = base + i
            async with gate:
                try:
                    conn = await self._open(
                        self.sessions[n % len(self.sessions)],
                        cmd["system"],
                        ports[n % len(ports)],
                        tokens[n % len(tokens)],
                        cmd.get("order", ""),
                    )
                    self.conns.append(conn)
                except Exception as exc:
                    failed += 1
                    if len(errors) < 3:
                        errors.append(repr(exc))

        started = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), cmd.get("timeout", 120))
        except TimeoutError:
            errors.append("connect phase timed out")
        return {
            "connected": len(self.conns) - base,
            "failed": failed,
            "seconds": time.monotonic() - started,
            "total": len(self.conns),
            "errors": errors,
        }

    async def drop(self, count: int) -> dict[str, Any]:
        gone, self.conns = self.conns[len(self.conns) - count :], self.conns[: len(self.conns) - count]
        for conn in gone:
            if conn.task is not None:
                conn.task.cancel()
        await asyncio.gather(*(c.ws.close() for c in gone), return_exceptions=True)
        return {"total": len(self.conns)}

    def reset(self) -> dict[str, Any]:
        for conn in self.conns:
            conn.count = 0
        self.latencies = []
        self.first = self.last = 0
        self.record = True
        return {"total": len(self.conns)}

    async def report(self, expected: int, within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and any(c.count < expected for c in self.conns):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        closed = sum(1 for c in self.conns if c.ws.closed)
        self.record = False
        return {
            "received": sum(c.count for c in self.conns),
            "complete": sum(1 for c in self.conns if c.count >= expected),
            "closed": closed,
            "first": self.first,
            "last": self.last,
            "latencies_us": self.latencies,
        }

    async def quiet(self, gap: float, within: float) -> dict[str, Any]:
        """Wait until nothing has arrived for `gap` seconds (a previous phase's stragglers)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and time.monotonic_ns() - self.seen < gap * 1e9:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return {"quiet": time.monotonic_ns() - self.seen >= gap * 1e9}

    async def close(self) -> None:
        await self.drop(len(self.conns))
        for session in self.sessions:
            await session.close()


async def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    gen = Generator()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = orjson.loads(line)
        name = cmd["cmd"]
        reply: dict[str, Any]
        if name == "connect":
            reply = await gen.connect(cmd)
        elif name == "drop":
            reply = await gen.drop(cmd["count"])
        elif name == "reset":
            reply = gen.reset()
        elif name == "quiet":
            reply = await gen.quiet(cmd["gap"], cmd["timeout"])
        elif name == "report":
            reply = await gen.report(cmd["expected"], cmd["timeout"])
        elif name == "quit":
            break
        else:
            reply = {"error": f"unknown command {name}"}
        out.write(orjson.dumps(reply).decode() + "\n")
        out.flush()
    await gen.close()


if __name__ == "__main__":
    asyncio.run(main())
