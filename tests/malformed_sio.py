"""Malformed Engine.IO / Socket.IO traffic, as the issue-13 campaign sent it (no login needed): bad
packet types, bad JSON, integers over 100 digits, wrong namespaces, binary garbage, over the polling
and the websocket transports. `flood` sends a few thousand such packets and counts them."""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass

import aiohttp
import orjson

HUGE = "1" + "0" * 120
# Engine.IO packets the decoder refuses or the server does not expect from a client.
BAD_EIO = ["x", "9", "7abc", "", "b!!notbase64", "0", "6", "4" + "9" * 200]
# Socket.IO packets (inside an Engine.IO MESSAGE) that do not decode or make no sense.
BAD_SIO = [
    '2["PING"',
    "2[" + HUGE + "]",
    f'21["PING",{{"n":{HUGE}}}]',
    '2/nope,["PING"]',
    "0/nope,",
    "9",
    '2{"a":1}',
    "21[",
    "3x",
    "5x",
    "2" + "9" * 120 + '["PING"]',
    '0{"token":' + HUGE + "}",
    '2["PING",1e9999]',
    '2["\\ud800"]',
    "2" + "[" * 5000 + "]" * 5000,
    "1",
    "6",
]


@dataclass
class Sent:
    """How many malformed packets went out, by transport."""

    polling: int = 0
    websocket: int = 0

    @property
    def total(self) -> int:
        return self.polling + self.websocket


async def _polling(session: aiohttp.ClientSession, base: str, count: int, sent: Sent, seed: int) -> None:
    """One polling session: CONNECT, then `count` POSTs of one or several malformed packets, until
    the server ends the session. The session's queue is never fetched (no GET after the handshake)."""
    async with session.get(f"{base}/socket.io/?EIO=4&transport=polling") as reply:
        sid = orjson.loads((await reply.text())[1:])["sid"]
    url = f"{base}/socket.io/?EIO=4&transport=polling&sid={sid}"
    async with session.post(url, data="40") as reply:
        await reply.read()
    packets = itertools.cycle(["4" + p for p in BAD_SIO] + BAD_EIO)
    for _ in range(seed):
        next(packets)
    for _ in range(count):
        batch = [next(packets) for _ in range(3)]
        async with session.post(url, data="\x1e".join(batch)) as reply:
            await reply.read()
            sent.polling += len(batch)
            if reply.status != 200:
                return


async def _websocket(session: aiohttp.ClientSession, base: str, count: int, sent: Sent, seed: int) -> None:
    """One websocket session: CONNECT, `count` malformed Socket.IO packets and binary garbage, then
    one malformed Engine.IO packet."""
    async with session.ws_connect(f"{base}/socket.io/?EIO=4&transport=websocket") as ws:
        await ws.receive(timeout=10)
        await ws.send_str("40")
        for i in range(count):
            if (i + seed) % 7 == 0:
                await ws.send_bytes(os.urandom(1 + (i * 13) % 64))
            else:
                await ws.send_str("4" + BAD_SIO[(i + seed) % len(BAD_SIO)])
            sent.websocket += 1
        await ws.send_str(BAD_EIO[seed % len(BAD_EIO)])
        sent.websocket += 1
        await asyncio.sleep(0.2)


async def flood(port: int, total: int = 3000, parallel: int = 20) -> Sent:
    """Send about `total` malformed packets to the server on `port`, half per transport."""
    base = f"http://127.0.0.1:{port}"
    sent = Sent()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        gate = asyncio.Semaphore(parallel)

        async def one(index: int) -> None:
            async with gate:
                try:
                    if index % 2:
                        await _polling(session, base, 20, sent, index)
                    else:
                        await _websocket(session, base, 100, sent, index)
                except (aiohttp.ClientError, ConnectionError, TimeoutError):
                    pass  # the server may end a session that misbehaves: that is its right

        sessions = max(2, total // 80)
        await asyncio.gather(*(one(i) for i in range(sessions)))
    return sent
