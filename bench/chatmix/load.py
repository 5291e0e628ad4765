"""The load generator of the chat benchmark: one process holding both sides of many pairs, driven by
bench/chatmix/run.py through JSON lines on stdin/stdout. One client per system, both on aiohttp
WebSocket connections: gigwire over `/ws` (docs/protocol.md), the peer over Socket.IO 5 / Engine.IO 4
spoken by hand (`40{auth}` to connect, `42<id>[event, data]` with `43<id>[ack]` answers, `2` pings
answered `3`).

For each pair the client side connects to the first server process and the doer side to the
second, so every message crosses processes. Each message's clientMsgId is `<pair>.<side>.<n>` and its
text ends with the CLOCK_MONOTONIC ns of its send (one clock for every process of the machine):
the sender measures send -> ACK, the other party send -> receipt.

Commands (one JSON object a line, each answered by one JSON line):
  {"cmd": "connect", "system": "gigwire"|"peer", "ports": [a, b], "pairs": [[order, client_token,
   client_id, doer_token, doer_id], ...], "local_addrs": [...], "concurrency": c}
  {"cmd": "run", "rate": per-connection msgs/s, "seconds": s}   paced sends (open loop), both sides
  {"cmd": "drain", "timeout": s}   wait until every sent message is answered and every ACKed one
                                   delivered (bounded); answer the step's figures, then reset them
  {"cmd": "close"} / {"cmd": "quit"}
"""

from __future__ import annotations

import asyncio
import gc
import random
import resource
import sys
import time
from typing import Any

import aiohttp
import orjson

from hub import gc_tune

TEXT = "hello, the draft is ready for review, sent at "


class Side:
    """One connection: one party of one pair, with what it sent and received in the current step."""

    __slots__ = ("acked", "errors", "name", "next_ack", "order", "other", "pending", "received", "user", "ws")

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, name: str, order: str, user: str) -> None:
        self.ws = ws
        self.name = name  # "<pair>.c" or "<pair>.d"
        self.order = order
        self.user = user
        self.other: Side | None = None
        self.pending: dict[str, int] = {}  # clientMsgId (or Socket.IO ack id) -> send ns
        self.acked: set[str] = set()
        self.received: set[str] = set()  # clientMsgIds of the other party's messages
        self.errors = 0
        self.next_ack = 1  # Socket.IO ack ids; 0 was the join


class Load:
    """The pairs of this process and the current step's measurements."""

    def __init__(self) -> None:
        self.sides: list[Side] = []
        self.sessions: list[aiohttp.ClientSession] = []
        self.system = "gigwire"
        self.ack_us: list[int] = []
        self.delivery_us: list[int] = []
        self.duplicates = 0
        self.sent = 0
        self.counter = 0

    # -- receiving -----------------------------------------------------------------------------

    def _acked(self, side: Side, key: str, data: Any) -> None:
        sent = side.pending.pop(key, None)
        if sent is None:
            return
        if not isinstance(data, dict) or "seq" not in data:
            side.errors += 1
            return
        self.ack_us.append((time.monotonic_ns() - sent) // 1000)
        side.acked.add(data["clientMsgId"])

    def _delivered(self, side: Side, data: dict[str, Any]) -> None:
        if data["senderId"] == side.user:
            return  # gigwire echoes a message to its sender's sessions too
        cmid = data["clientMsgId"]
        if cmid in side.received:
            self.duplicates += 1
            return
        side.received.add(cmid)
        text: str = data["text"]
        self.delivery_us.append((time.monotonic_ns() - int(text[len(TEXT) :])) // 1000)

    async def _read_gigwire(self, side: Side) -> None:
        while True:
            msg = await side.ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return
            frame = orjson.loads(msg.data)
            kind = frame.get("type")
            if kind == "CHAT_MESSAGE":
                self._delivered(side, frame["data"])
            elif kind == "ACK":
                self._acked(side, frame.get("ref", ""), frame.get("data"))
            elif kind == "ERROR":
                side.errors += 1
                side.pending.pop(frame.get("ref", ""), None)

    async def _read_peer(self, side: Side) -> None:
        while True:
            msg = await side.ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return
            data: str = msg.data
            if data.startswith("42"):
                event = orjson.loads(data[2:])
                if event[0] == "message":
                    self._delivered(side, event[1])
            elif data.startswith("43"):
                at = data.index("[")
                self._acked(side, data[2:at], orjson.loads(data[at:])[0])
            elif data == "2":
                await side.ws.send_str("3")

    # -- connecting ----------------------------------------------------------------------------

    async def _open_gigwire(self, http: aiohttp.ClientSession, port: int, token: str, order: str) -> Any:
        ws = await http.ws_connect(f"http://127.0.0.1:{port}/ws?token={token}", max_msg_size=0)
        hello = orjson.loads((await ws.receive(timeout=60)).data)
        if hello.get("type") != "AUTHENTICATED":
            raise RuntimeError(f"not authenticated: {hello}")
        await ws.send_str(
            orjson.dumps({"type": "SUBSCRIBE_CHAT", "data": {"orderId": order}, "ref": "s"}).decode()
        )
        while True:
            frame = orjson.loads((await ws.receive(timeout=60)).data)
            if frame.get("ref") == "s":
                if frame.get("type") != "ACK":
                    raise RuntimeError(f"not subscribed: {frame}")
                return ws

    async def _open_peer(self, http: aiohttp.ClientSession, port: int, token: str, order: str) -> Any:
        ws = await http.ws_connect(
            f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", max_msg_size=0
        )
        opened = (await ws.receive(timeout=60)).data
        if not isinstance(opened, str) or not opened.startswith("0"):
            raise RuntimeError(f"no Engine.IO open packet: {opened!r}")
        await ws.send_str("40" + orjson.dumps({"token": token}).decode())
        joined = (await ws.receive(timeout=60)).data
        if not isinstance(joined, str) or not joined.startswith("40"):
            raise RuntimeError(f"refused: {joined!r}")
        await ws.send_str("420" + orjson.dumps(["join", {"orderId": order}]).decode())
        while True:
            data = (await ws.receive(timeout=60)).data
            if isinstance(data, str) and data.startswith("430"):
                if "error" in data:
                    raise RuntimeError(f"not joined: {data}")
                return ws
            if data == "2":
                await ws.send_str("3")

    async def connect(self, cmd: dict[str, Any]) -> dict[str, Any]:
        self.system = cmd["system"]
        for addr in cmd["local_addrs"][len(self.sessions) :]:
            connector = aiohttp.TCPConnector(limit=0, local_addr=(addr, 0), force_close=True)
            self.sessions.append(aiohttp.ClientSession(connector=connector))
        opener = self._open_gigwire if self.system == "gigwire" else self._open_peer
        reader = self._read_gigwire if self.system == "gigwire" else self._read_peer
        gate = asyncio.Semaphore(cmd.get("concurrency", 32))
        ports: list[int] = cmd["ports"]
        failed: list[str] = []
        tasks: list[asyncio.Task[None]] = []

        async def side(n: int, name: str, port: int, token: str, order: str, user: str) -> Side | None:
            async with gate:
                try:
                    ws = await opener(self.sessions[n % len(self.sessions)], port, token, order)
                except Exception as exc:
                    failed.append(repr(exc))
                    return None
            s = Side(ws, name, order, user)
            tasks.append(asyncio.create_task(reader(s)))
            return s

        async def pair(n: int, spec: list[str]) -> None:
            order, client_token, client_id, doer_token, doer_id = spec
            client, doer = await asyncio.gather(
                side(2 * n, f"{n}.c", ports[0], client_token, order, client_id),
                side(2 * n + 1, f"{n}.d", ports[1], doer_token, order, doer_id),
            )
            if client is not None and doer is not None:
                client.other, doer.other = doer, client
                self.sides += [client, doer]

        started = time.monotonic()
        await asyncio.gather(*(pair(n, spec) for n, spec in enumerate(cmd["pairs"])))
        self._readers = tasks
        return {
            "connections": len(self.sides),
            "failed": len(failed),
            "errors": failed[:3],
            "seconds": time.monotonic() - started,
        }

    # -- sending -------------------------------------------------------------------------------

    async def _send(self, side: Side, now: int) -> None:
        self.counter += 1
        cmid = f"{side.name}.{self.counter}"
        data = {"orderId": side.order, "text": f"{TEXT}{now}", "clientMsgId": cmid}
        if self.system == "gigwire":
            side.pending[cmid] = now
            await side.ws.send_str(orjson.dumps({"type": "CHAT_MESSAGE", "data": data, "ref": cmid}).decode())
        else:
            ack = str(side.next_ack)
            side.next_ack += 1
            side.pending[ack] = now
            await side.ws.send_str(f"42{ack}" + orjson.dumps(["message", data]).decode())
        self.sent += 1

    async def _pace(self, side: Side, period_ns: float, end: int) -> None:
        # Open loop: each send is due at its time whatever the answers, so queueing shows in latency.
        due = time.monotonic_ns() + random.random() * period_ns
        while due < end and not side.ws.closed:
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            await self._send(side, time.monotonic_ns())
            due += period_ns

    async def run(self, rate: float, seconds: float) -> dict[str, Any]:
        end = time.monotonic_ns() + int(seconds * 1e9)
        await asyncio.gather(*(self._pace(s, 1e9 / rate, end) for s in self.sides), return_exceptions=True)
        return {"sent": self.sent}

    def _missing(self) -> tuple[int, int]:
        """(sent but unanswered, ACKed but not yet received by the other party)."""
        pending = sum(len(s.pending) for s in self.sides)
        undelivered = sum(len(s.acked - s.other.received) for s in self.sides if s.other is not None)
        return pending, undelivered

    async def drain(self, within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and any(self._missing()):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        pending, undelivered = self._missing()
        out = {
            "sent": self.sent,
            "acked": sum(len(s.acked) for s in self.sides),
            "errors": sum(s.errors for s in self.sides),
            "undrained": 1 if pending or undelivered else 0,
            "unanswered": pending,
            "lost": undelivered,
            "duplicates": self.duplicates,
            "closed": sum(1 for s in self.sides if s.ws.closed),
            "ack_us": self.ack_us,
            "delivery_us": self.delivery_us,
        }
        for s in self.sides:
            s.pending.clear()
            s.acked.clear()
            s.received.clear()
            s.errors = 0
        self.ack_us, self.delivery_us = [], []
        self.sent = self.duplicates = 0
        return out

    async def close(self) -> dict[str, Any]:
        for task in getattr(self, "_readers", []):
            task.cancel()
        await asyncio.gather(*(s.ws.close() for s in self.sides), return_exceptions=True)
        self.sides = []
        return {"connections": 0}


async def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    load = Load()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        cmd = orjson.loads(line)
        name = cmd["cmd"]
        if name == "quit":
            break
        if name == "connect":
            reply = await load.connect(cmd)
            # The clients are measured instrument, not subject: keep the collector's full passes over
            # thousands of client connections (150-270 ms each with CPython's defaults) out of the
            # latencies, the way the hub does for itself (hub/gc_tune.py).
            gc_tune.settle(gc_tune.DEFAULT_THRESHOLD)
        elif name == "run":
            reply = await load.run(cmd["rate"], cmd["seconds"])
        elif name == "drain":
            reply = await load.drain(cmd["timeout"])
        elif name == "close":
            reply = await load.close()
            gc.unfreeze()
        else:
            reply = {"error": f"unknown command {name}"}
        sys.stdout.buffer.write(orjson.dumps(reply) + b"\n")
        sys.stdout.buffer.flush()
    await load.close()
    for session in load.sessions:
        await session.close()


if __name__ == "__main__":
    asyncio.run(main())
