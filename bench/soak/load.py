"""The soak's load generator: one process holding both sides of many order pairs, driven by
bench/soak/run.py through JSON lines on stdin/stdout (bench.compare.phases.Worker).

Every pair chats across transports and processes: pair n's client side speaks raw `/ws` when n is
even and Socket.IO (Engine.IO 4 spoken by hand over aiohttp, as bench/chatmix/load.py does) when odd,
its doer side the other one; the client connects first to hub A, the doer to hub B. A side is a
client as docs/protocol.md tells one to be: when its connection ends (a hub killed, a 1001 or 1013)
it reconnects with backoff, to the other hub when its own refuses, subscribes with `sinceSeq` (the
last contiguous `seq` it holds) and resends every unACKed message with its `clientMsgId`. It sends
chat messages at a fixed rate, MESSAGE_READ for part of what it receives, TYPING_START/STOP around
part of its sends. A REST loop calls GET /api/gigs, /api/feed and /api/orders with the pairs' tokens.
A publisher sends NOTIFICATIONs to the pairs' users through the server API; every side resumes its
user's feed with `sinceFeedSeq` on each reconnect (bench/soak/feed.py).

Commands (one JSON object a line, each answered by one JSON line):
  {"cmd": "connect", "ports": [a, b], "pairs": [[order, client_token, client_id, doer_token,
   doer_id, n], ...], "rate": msgs/s per connection, "read": p, "typing": p, "rest_per_s": r,
   "feed_per_s": f, "api_key": "gw_..."}
  {"cmd": "status"}          counts so far (connected sides, closes by code, REST statuses, ...)
  {"cmd": "stop", "timeout": s}   stop sending, wait until every message is ACKed and delivered
                                  (bounded), then answer the figures and every ACKed message
  {"cmd": "quit"}
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import resource
import sys
import time
from typing import Any

import aiohttp
import orjson

from bench.soak.feed import FEED_KINDS, FeedSide, Publisher, feed_figures

WS, SIO = "ws", "sio"
RESEND_AFTER_S = 5.0
TEXT = "the draft is ready for review; sent at "


class Side:
    """One party of one pair on one connection at a time; what it sent, got ACKed and received."""

    def __init__(self, load: Load, name: str, transport: str, port: int, token: str, order: str, user: str):
        self.load = load
        self.name = name
        self.transport = transport
        self.port = port
        self.token = token
        self.order = order
        self.user = user
        self.other: Side | None = None
        self.feed = FeedSide()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.live = False  # connected and subscribed
        self.pending: dict[str, float] = {}  # clientMsgId -> last send (monotonic s)
        self.acked: dict[str, int] = {}  # clientMsgId -> seq
        self.received: set[str] = set()  # the other party's clientMsgIds
        self.seqs: set[int] = set()
        self.contiguous = 0  # every seq up to this one was received
        self.sent = 0
        self.replies: dict[str, asyncio.Future[tuple[bool, Any]]] = {}
        self.ack_ids: dict[int, str] = {}
        self.next_ack = 1
        self.connects = 0

    # -- wire ----------------------------------------------------------------------------------

    async def emit(self, kind: str, data: dict[str, Any], ref: str | None = None) -> None:
        ws = self.ws
        if ws is None or ws.closed:
            raise ConnectionError("not connected")
        if self.transport == WS:
            frame: dict[str, Any] = {"type": kind, "data": data}
            if ref is not None:
                frame["ref"] = ref
            await ws.send_str(orjson.dumps(frame).decode())
        elif ref is None:
            await ws.send_str("42" + orjson.dumps([kind, data]).decode())
        else:
            ack = self.next_ack
            self.next_ack += 1
            self.ack_ids[ack] = ref
            await ws.send_str(f"42{ack}" + orjson.dumps([kind, data]).decode())

    async def request(self, kind: str, data: dict[str, Any], within: float = 30.0) -> tuple[bool, Any]:
        """Emit with a ref; (ok, data) of its ACK or ERROR."""
        ref = f"q{self.load.counter()}"
        future: asyncio.Future[tuple[bool, Any]] = asyncio.get_running_loop().create_future()
        self.replies[ref] = future
        try:
            await self.emit(kind, data, ref)
            return await asyncio.wait_for(future, within)
        finally:
            self.replies.pop(ref, None)

    def on_reply(self, ref: str, ok: bool, data: Any) -> None:
        future = self.replies.get(ref)
        if future is not None and not future.done():
            future.set_result((ok, data))
            return
        if not ok:
            code = data.get("code") if isinstance(data, dict) else data
            self.load.errors[f"{ref.split(':', maxsplit=1)[0]}:{code}"] += 1
        elif ref.startswith("m:") and isinstance(data, dict) and "seq" in data:  # a chat message's ACK
            cmid = ref[2:]
            self.pending.pop(cmid, None)
            if self.acked.setdefault(cmid, data["seq"]) != data["seq"]:
                self.load.errors["ack with another seq (stored twice)"] += 1

    def on_event(self, kind: str, data: Any) -> None:
        if kind == "CHAT_MESSAGE":
            seq = data["seq"]
            if seq in self.seqs:
                self.load.redelivered += 1
            self.seqs.add(seq)
            while self.contiguous + 1 in self.seqs:
                self.contiguous += 1
            if data["senderId"] != self.user:
                self.received.add(data["clientMsgId"])
                if self.live and random.random() < self.load.read_p:
                    self.load.spawn(self._read(data["id"]))
        elif kind == "ERROR":
            self.load.errors[str(data.get("code"))] += 1
        elif kind == "FEED_EXPIRED":
            self.load.errors["FEED_EXPIRED"] += 1
        elif kind in FEED_KINDS:
            self.feed.on_feed(kind, data)
        self.load.events[kind] += 1

    async def _read(self, message_id: str) -> None:
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await self.emit("MESSAGE_READ", {"messageId": message_id}, "r:" + message_id)

    async def _read_ws(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return
            frame = orjson.loads(msg.data)
            kind, ref = frame.get("type"), frame.get("ref")
            if kind in ("ACK", "ERROR") and ref is not None:
                self.on_reply(ref, kind == "ACK", frame.get("data"))
            elif kind is not None:
                self.on_event(kind, frame.get("data"))

    async def _read_sio(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return
            text: str = msg.data
            if text == "2":
                await ws.send_str("3")
            elif text.startswith("42"):
                event = orjson.loads(text[2:])
                self.on_event(event[0], event[1] if len(event) > 1 else None)
            elif text.startswith("43"):
                at = text.index("[")
                ref = self.ack_ids.pop(int(text[2:at]), None)
                data = orjson.loads(text[at:])[0]
                if ref is not None:
                    failed = isinstance(data, dict) and "error" in data
                    self.on_reply(ref, not failed, data["error"] if failed else data)
            elif text.startswith("41") or text == "1":
                return  # namespace disconnect or Engine.IO close

    # -- life ------------------------------------------------------------------------------------

    async def _text(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        """The next text frame while opening; a close is counted (`open:<transport>:<code>`)."""
        msg = await ws.receive(timeout=30)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            self.load.closes[f"open:{self.transport}:{ws.close_code}"] += 1
            raise ConnectionError(f"closed while opening: {msg.type} {ws.close_code}")
        text: str = msg.data
        return text

    async def _open(self, port: int) -> tuple[aiohttp.ClientWebSocketResponse, Any]:
        http = self.load.http
        if self.transport == WS:
            since = self.feed.feed_contiguous
            url = f"http://127.0.0.1:{port}/ws?token={self.token}&sinceFeedSeq={since}"
            ws = await http.ws_connect(url, heartbeat=None)
            try:
                hello = orjson.loads(await self._text(ws))
                if hello.get("type") != "AUTHENTICATED":
                    raise ConnectionError(f"not authenticated: {hello}")
            except BaseException:
                await ws.close()
                raise
            return ws, self._read_ws
        ws = await http.ws_connect(f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket")
        try:
            opened = await self._text(ws)
            if not opened.startswith("0"):
                raise ConnectionError(f"no Engine.IO open: {opened!r}")
            auth = {"token": self.token, "sinceFeedSeq": self.feed.feed_contiguous}
            await ws.send_str("40" + orjson.dumps(auth).decode())
            joined = await self._text(ws)
            if not joined.startswith("40"):
                raise ConnectionError(f"refused: {joined!r}")
        except BaseException:
            await ws.close()
            raise
        return ws, self._read_sio

    async def life(self, ports: list[int]) -> None:
        """`_life`, restarted should it ever fail (counted: a load-generator bug)."""
        while not self.load.stopping:
            try:
                await self._life(ports)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.load.errors[f"load generator: {exc!r}"[:100]] += 1
                await asyncio.sleep(1.0)

    async def _life(self, ports: list[int]) -> None:
        """Connect, subscribe, resend, read until the connection ends; again, until stopped."""
        backoff = 0.2
        port = self.port
        while not self.load.stopping:
            try:
                ws, reader = await self._open(port)
            except (OSError, aiohttp.ClientError, ConnectionError, TimeoutError, ValueError) as exc:
                self.load.connect_failures[type(exc).__name__] += 1
                port = ports[1] if port == ports[0] else ports[0]  # that hub may be gone: the other
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(5.0, backoff * 2)
                continue
            self.ws = ws
            self.connects += 1
            reading = asyncio.create_task(reader(ws))
            try:
                ok, data = await self.request(
                    "SUBSCRIBE_CHAT", {"orderId": self.order, "sinceSeq": self.contiguous}
                )
                if ok:
                    backoff = 0.2
                    self.live = True
                    for cmid in list(self.pending):
                        await self._send(cmid)
                else:
                    self.load.errors["subscribe:" + str(data.get("code"))] += 1
                    await ws.close()
                await reading
            except (OSError, aiohttp.ClientError, ConnectionError, TimeoutError):
                pass
            finally:
                self.live = False
                reading.cancel()
                self.load.closes[f"{self.transport}:{ws.close_code}"] += 1
                self.ws = None
                for future in self.replies.values():
                    if not future.done():
                        future.set_exception(ConnectionError("closed"))
                self.ack_ids.clear()
            if not self.load.stopping:
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(5.0, backoff * 2)

    async def _send(self, cmid: str) -> None:
        self.pending[cmid] = time.monotonic()
        data = {"orderId": self.order, "text": f"{TEXT}{time.monotonic_ns()}", "clientMsgId": cmid}
        await self.emit("CHAT_MESSAGE", data, "m:" + cmid)

    async def chat(self, rate: float) -> None:
        """Send a new message every 1/rate s while live; resend what waited RESEND_AFTER_S unACKed."""
        await asyncio.sleep(random.random() / rate)
        while not self.load.sending_done:
            if self.live:
                try:
                    now = time.monotonic()
                    for cmid, at in list(self.pending.items()):
                        if now - at > RESEND_AFTER_S:
                            self.load.resends += 1
                            await self._send(cmid)
                    if random.random() < self.load.typing_p:
                        await self.emit("TYPING_START", {"orderId": self.order}, "t:s")
                    self.sent += 1
                    await self._send(f"{self.name}.{self.sent}")
                    if random.random() < self.load.typing_p:
                        await self.emit("TYPING_STOP", {"orderId": self.order}, "t:e")
                except (OSError, aiohttp.ClientError, ConnectionError):
                    pass
            await asyncio.sleep(1.0 / rate)

    async def finish(self) -> None:
        """After sending stopped: resend until every message is ACKed."""
        while self.pending:
            if self.live:
                now = time.monotonic()
                for cmid, at in list(self.pending.items()):
                    if now - at > RESEND_AFTER_S:
                        try:
                            await self._send(cmid)
                        except (OSError, aiohttp.ClientError, ConnectionError):
                            break
            await asyncio.sleep(0.5)


class Load:
    """The sides of this process, its REST loop, and the counts."""

    def __init__(self) -> None:
        self.sides: list[Side] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self._spawned: set[asyncio.Task[Any]] = set()
        self.stopping = False
        self.sending_done = False
        self.read_p = 0.5
        self.typing_p = 0.3
        self.closes: collections.Counter[str] = collections.Counter()
        self.connect_failures: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.events: collections.Counter[str] = collections.Counter()
        self.rest: collections.Counter[str] = collections.Counter()
        self.rest_samples: list[str] = []
        self.redelivered = 0
        self.resends = 0
        self._n = 0
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))
        self.publisher: Publisher | None = None
        self.publishing: asyncio.Task[None] | None = None

    def counter(self) -> int:
        self._n += 1
        return self._n

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    async def connect(self, cmd: dict[str, Any]) -> dict[str, Any]:
        ports: list[int] = cmd["ports"]
        self.read_p, self.typing_p = cmd["read"], cmd["typing"]
        for order, c_token, c_id, d_token, d_id, n in cmd["pairs"]:
            first, second = (WS, SIO) if n % 2 == 0 else (SIO, WS)
            client = Side(self, f"{n}.c", first, ports[0], c_token, order, c_id)
            doer = Side(self, f"{n}.d", second, ports[1], d_token, order, d_id)
            client.other, doer.other = doer, client
            self.sides += [client, doer]
        # Connect gradually (a thundering herd of 2,000 handshakes is not what is measured).
        for i, side in enumerate(self.sides):
            self.tasks.append(asyncio.create_task(side.life(ports)))
            if i % 50 == 49:
                await asyncio.sleep(0.2)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(s.live for s in self.sides):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        for side in self.sides:
            self.tasks.append(asyncio.create_task(side.chat(cmd["rate"])))
        if cmd["rest_per_s"] > 0:
            self.tasks.append(asyncio.create_task(self.rest_loop(ports, cmd["rest_per_s"])))
        if cmd.get("feed_per_s", 0) > 0 and cmd.get("api_key"):
            self.publisher = Publisher(self.http, cmd["api_key"], ports)
            self.publishing = asyncio.create_task(self.publisher.loop(self.sides, cmd["feed_per_s"]))
            self.tasks.append(self.publishing)
        return {"connections": len(self.sides), "live": sum(s.live for s in self.sides)}

    async def rest_loop(self, ports: list[int], per_s: float) -> None:
        paths = ["/api/gigs?limit=20", "/api/feed?sinceSeq=0&limit=50", "/api/orders"]
        while not self.sending_done:
            side = random.choice(self.sides)
            self.spawn(self._rest(random.choice(ports), random.choice(paths), side.token, ports))
            await asyncio.sleep(random.expovariate(per_s))

    async def _rest(self, port: int, path: str, token: str, ports: list[int] | None = None) -> None:
        """One GET; a hub that refuses the connection (killed) is replaced by the other, as a load
        balancer would (counted as `failed over`)."""
        name = path.split("?", maxsplit=1)[0]
        try:
            async with self.http.get(
                f"http://127.0.0.1:{port}{path}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=aiohttp.ClientTimeout(total=30),
            ) as resp:
                body = await resp.read()
                self.rest[f"{resp.status}"] += 1
                self.rest[f"{name} {resp.status}"] += 1
                if resp.status >= 500:
                    retry = resp.headers.get("Retry-After")
                    self.rest[f"{resp.status} retry-after={retry}"] += 1
                    if len(self.rest_samples) < 5:
                        self.rest_samples.append(f"{name} {resp.status}: {body[:200]!r}")
        except aiohttp.ClientConnectorError:
            if ports is None:
                self.rest["unreachable"] += 1
                return
            self.rest["failed over"] += 1
            await self._rest(ports[1] if port == ports[0] else ports[0], path, token)
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            self.rest[f"failed {type(exc).__name__}"] += 1

    def status(self) -> dict[str, Any]:
        return {
            "sides": len(self.sides),
            "live": sum(s.live for s in self.sides),
            "acked": sum(len(s.acked) for s in self.sides),
            "pending": sum(len(s.pending) for s in self.sides),
            "closes": dict(self.closes),
            "connect_failures": dict(self.connect_failures),
            "errors": dict(self.errors),
            "rest": dict(self.rest),
        }

    def _feed_missing(self) -> int:
        return 0 if self.publisher is None else self.publisher.missing(self.sides)

    def _undelivered(self) -> int:
        return sum(len(set(s.acked) - s.other.received) for s in self.sides if s.other is not None)

    async def stop(self, within: float) -> dict[str, Any]:
        self.sending_done = True
        deadline = time.monotonic() + within
        if self.publisher is not None and self.publishing is not None:
            self.publisher.done = True
            await asyncio.wait([self.publishing], timeout=60)
        finishing = [asyncio.create_task(s.finish()) for s in self.sides]
        while time.monotonic() < deadline and (  # noqa: ASYNC110
            any(s.pending for s in self.sides) or self._undelivered() or self._feed_missing()
        ):
            await asyncio.sleep(0.5)
        drained = time.monotonic() < deadline
        for task in finishing:
            task.cancel()
        out = self.status() | {
            "drained": drained,
            "undelivered": self._undelivered(),
            "undelivered_samples": [
                (s.name, sorted(set(s.acked) - s.other.received)[:3])
                for s in self.sides
                if s.other is not None and set(s.acked) - s.other.received
            ][:5],
            "redelivered": self.redelivered,
            "resends": self.resends,
            "events": dict(self.events),
            "connects": sum(s.connects for s in self.sides),
            "rest_samples": self.rest_samples,
            "messages": [[s.user, cmid, seq, s.order] for s in self.sides for cmid, seq in s.acked.items()],
        }
        if self.publisher is not None:
            out |= feed_figures(self.publisher, self.sides)
        self.stopping = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*(s.ws.close() for s in self.sides if s.ws is not None), return_exceptions=True)
        return out


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
        elif name == "status":
            reply = load.status()
        elif name == "stop":
            reply = await load.stop(cmd["timeout"])
        else:
            reply = {"error": f"unknown command {name}"}
        sys.stdout.buffer.write(orjson.dumps(reply) + b"\n")
        sys.stdout.buffer.flush()
    await load.http.close()


if __name__ == "__main__":
    asyncio.run(main())
