"""Waiting for Redis to confirm a SUBSCRIBE or SSUBSCRIBE, shared by the Redis brokers.

A broker's `subscribe` returns only once the server has confirmed the channel, so a message
published after it returns is delivered; the listener confirms or fails the waiters."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

CONFIRM_TIMEOUT_S = 5.0


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
            if waiter.done():
                if not waiter.cancelled():
                    # `fail_all` may have failed it while `send` raised: never awaited, it would be
                    # logged at ERROR as "Future exception was never retrieved" when collected.
                    waiter.exception()
            else:
                waiter.cancel()
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
