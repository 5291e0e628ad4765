"""The Redis broker: one pub/sub connection per process, channels reference-counted, a listener
that reconnects with backoff (1 s doubling to 60 s, with jitter) and re-subscribes, logging and
counting every reconnect. It never dies silently: only `close()` ends it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub.broker import ChannelRefs, Deliver, Reconnected
from hub.broker_confirm import Confirmations, read_messages
from hub.loops import Backoff, supervise

log = logging.getLogger("gigwire.broker")


class RedisBroker:
    """Broker contract over Redis PUBLISH/SUBSCRIBE; channel names carry the deployment prefix."""

    def __init__(self, url: str, prefix: str, deliver: Deliver) -> None:
        self._prefix = prefix
        self._cut = len(prefix)
        self._placeholder = prefix + "_"
        self._deliver = deliver
        self._refs = ChannelRefs()
        self._publisher = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._sub = Redis.from_url(url, socket_connect_timeout=2)
        # Subscribe confirmations are read too: they tell `subscribe` its channel is live.
        self._pubsub = self._sub.pubsub()
        self._confirmations = Confirmations()
        self._callbacks: list[Reconnected] = []
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = asyncio.Event()
        self._backoff = Backoff()
        self._lost = False  # set when a connection was lost; cleared when re-subscribed
        self.reconnects = 0
        self.failures = 0
        """Listener failures (each logged and followed by a reconnect), for tests and diagnosis."""

    def on_reconnect(self, callback: Reconnected) -> None:
        """Call `callback` each time the listener has subscribed again after a lost connection."""
        self._callbacks.append(callback)

    async def start(self) -> None:
        """Start the listener; wait up to 5 s for its first connection (it keeps trying after)."""
        self._task = asyncio.create_task(self._listen(), name="gigwire-broker-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), 5)

    async def publish(self, channel: str, data: bytes) -> None:
        """PUBLISH; raises RedisError/OSError when Redis cannot be reached."""
        await self._publisher.publish(self._prefix + channel, data)

    async def subscribe(self, channel: str) -> None:
        """Count one reference; the first one subscribes and waits for Redis's confirmation."""
        if not self._refs.add(channel) or not self._connected.is_set():
            return
        name = self._prefix + channel
        try:
            await self._confirmations.wait(name, lambda: self._pubsub.subscribe(name))
        except (RedisError, OSError, TimeoutError) as exc:
            # The listener sees the lost connection and subscribes every counted channel again.
            log.warning("subscribe not confirmed", extra={"channel": channel, "error": repr(exc)})

    async def unsubscribe(self, channel: str) -> None:
        """Drop one reference; the last one unsubscribes."""
        if self._refs.drop(channel) and self._connected.is_set():
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(self._prefix + channel)

    async def ping(self) -> None:
        await self._publisher.ping()

    async def close(self) -> None:
        self._closing.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, 5)
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        await self._sub.aclose()
        await self._publisher.aclose()

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel = message.get("channel")
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if kind == "message":
            try:
                self._deliver(name[self._cut :], message["data"])
            except Exception:  # a bad message or a hub bug must not end the listener
                log.exception("delivery failed", extra={"channel": name})
        elif kind == "subscribe":
            self._confirmations.confirm(name)
            if name == self._placeholder and self._lost:
                # Redis applies one SUBSCRIBE command whole: every channel is live again now.
                self._lost = False
                self.reconnects += 1
                log.warning("broker reconnected and re-subscribed", extra={"channels": len(self._refs)})
                for callback in self._callbacks:
                    try:
                        callback()
                    except Exception:
                        log.exception("reconnect listener failed")

    async def _listen(self) -> None:
        await supervise(
            "broker",
            self._listen_once,
            logger=log,
            message="broker connection lost; reconnecting",
            on_error=self._count_failure,
            stopping=self._closing,
            backoff=self._backoff,
            expected=(RedisError, OSError),
        )

    def _count_failure(self, exc: Exception) -> None:
        self.failures += 1

    async def _listen_once(self) -> None:
        """Subscribe every counted channel and deliver messages until the connection is lost (then
        clean up and raise) or `close()` is called (then return)."""
        try:
            channels = [self._prefix + c for c in self._refs]
            # The placeholder keeps the connection in pub/sub mode with no channels, and its
            # confirmation marks the moment every channel below is subscribed.
            await self._pubsub.subscribe(self._placeholder, *channels)
            self._connected.set()
            self._backoff.reset()
            await read_messages(self._pubsub, self._handle, self._closing)
        except Exception:
            if self._closing.is_set():
                return  # our own close() broke the connection
            self._connected.clear()
            self._lost = True
            self._confirmations.fail_all(ConnectionError("broker connection lost"))
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # reusable after
            raise
