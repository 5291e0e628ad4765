"""The listener of one Redis pub/sub connection, shared by the Redis brokers (hub/broker_redis.py:
the whole process's subscriptions; hub/broker_redis_cluster.py: one primary's).

It runs under `hub.loops.supervise`: subscribe everything, deliver messages until the connection
is lost, then fail the subscribes waiting for a confirmation, close the connection (redis-py
reopens it on the next command) and try again after a backoff (1 s doubling to 60 s, with jitter,
reset once subscribed). Every failure is logged and counted in `failures`; only `close()` ends
it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from hub.broker_confirm import Confirmations
from hub.loops import Backoff, supervise

log = logging.getLogger("gigwire.broker")

PING_EVERY_S = 10.0
DEAD_AFTER_S = 30.0  # no reply to our pings for this long: the connection is half-open


class PubSubListener:
    """Base of a broker (or shard) holding one pub/sub connection: subclasses say how to subscribe
    everything (`_subscribe_all`) and what a message does (`_handle`, which must not raise for a
    bad message: an exception from it counts as a lost connection)."""

    _loop_name = "broker"
    _lost_message = "broker connection lost; reconnecting"

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub
        self._confirmations = Confirmations()
        self._connected = asyncio.Event()
        self._closing = asyncio.Event()
        self._backoff = Backoff()
        self._lost = False  # set when a connection was lost; cleared by the subclass when recovered
        self._task: asyncio.Task[None] | None = None
        self.failures = 0
        """Listener failures (each logged and followed by a reconnect), for tests and diagnosis."""

    async def _subscribe_all(self) -> None:
        raise NotImplementedError

    def _handle(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def _on_lost(self) -> None:
        """Called once per lost connection, after its cleanup and before the backoff."""

    def _log_extra(self) -> dict[str, object]:
        return {}

    def _start_listening(self, task_name: str) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen(), name=task_name)

    async def _stop_listening(self) -> None:
        """End the listener (waiting up to 5 s) and close the pub/sub connection."""
        self._closing.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, 5)
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]

    async def _listen(self) -> None:
        await supervise(
            self._loop_name,
            self._listen_once,
            logger=log,
            message=self._lost_message,
            on_error=self._count_failure,
            stopping=self._closing,
            backoff=self._backoff,
            expected=(RedisError, OSError),
            extra=self._log_extra(),
        )

    def _count_failure(self, exc: Exception) -> None:
        self.failures += 1

    async def _listen_once(self) -> None:
        """Subscribe and deliver until the connection is lost (then clean up and raise) or
        `_stop_listening` (then return)."""
        try:
            await self._subscribe_all()
            self._connected.set()
            self._backoff.reset()
            await self._read()
        except Exception:
            if self._closing.is_set():
                return  # our own close broke the connection
            self._connected.clear()
            self._lost = True
            self._confirmations.fail_all(ConnectionError("broker connection lost"))
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # reusable after
            self._on_lost()
            raise

    async def _read(self) -> None:
        """Hand every message to `_handle` until closing. Pings every PING_EVERY_S; raises
        ConnectionError when nothing, not even a pong, arrived for DEAD_AFTER_S."""
        last_seen = last_ping = time.monotonic()
        while not self._closing.is_set():
            # A finite timeout: redis-py can swallow a cancellation inside an unbounded read.
            message = await self._pubsub.get_message(timeout=1.0)
            now = time.monotonic()
            if message is not None:
                last_seen = now
                self._handle(message)
            elif now - last_seen > DEAD_AFTER_S:
                raise ConnectionError(f"no reply from Redis for {DEAD_AFTER_S:.0f} s")
            if now - last_ping > PING_EVERY_S:
                last_ping = now
                await self._pubsub.ping()
