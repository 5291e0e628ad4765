"""What the Redis brokers' listeners share: waiting for Redis to confirm a SUBSCRIBE or
SSUBSCRIBE, and reading a pub/sub connection until it dies.

A broker's `subscribe` returns only once the server has confirmed the channel, so a message
published after it returns is delivered; the listener confirms or fails the waiters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio.client import PubSub

CONFIRM_TIMEOUT_S = 5.0
PING_EVERY_S = 10.0
DEAD_AFTER_S = 30.0  # no reply to our pings for this long: the connection is half-open


async def read_messages(
    pubsub: PubSub, handle: Callable[[dict[str, Any]], None], closing: asyncio.Event
) -> None:
    """Hand every message of `pubsub` (subscribed already) to `handle` until `closing` is set.
    Pings every PING_EVERY_S; raises ConnectionError when nothing, not even a pong, arrived for
    DEAD_AFTER_S, and whatever redis-py or `handle` raises."""
    last_seen = last_ping = time.monotonic()
    while not closing.is_set():
        # A finite timeout: redis-py can swallow a cancellation inside an unbounded read.
        message = await pubsub.get_message(timeout=1.0)
        now = time.monotonic()
        if message is not None:
            last_seen = now
            handle(message)
        elif now - last_seen > DEAD_AFTER_S:
            raise ConnectionError(f"no reply from Redis for {DEAD_AFTER_S:.0f} s")
        if now - last_ping > PING_EVERY_S:
            last_ping = now
            await pubsub.ping()


class Confirmations:
    """Futures waiting for a channel's subscribe confirmation, per channel name."""

    def __init__(self) -> None:
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    async def wait(self, name: str, send: Callable[[], Awaitable[object]]) -> None:
        """Run `send` (the subscribe command), then wait for `confirm(name)`. Raises what `send`
        raises, TimeoutError after CONFIRM_TIMEOUT_S, or the error given to `fail_all`."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(name, []).append(waiter)
        try:
            await send()
            await asyncio.wait_for(asyncio.shield(waiter), CONFIRM_TIMEOUT_S)
        finally:
            waiters = self._waiters.get(name, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(name, None)

    def confirm(self, name: str) -> None:
        """The server confirmed `name`: release everyone waiting for it."""
        for waiter in self._waiters.pop(name, []):
            if not waiter.done():
                waiter.set_result(None)

    def fail_all(self, error: BaseException) -> None:
        """The connection was lost: every waiter gets `error` (the listener re-subscribes later)."""
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
