"""The Redis broker: one pub/sub connection per process, channels reference-counted, a listener
that reconnects with backoff and re-subscribes. (First cut; hardened by the realtime hub work.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub.broker import Deliver

log = logging.getLogger("gigwire.broker")


class RedisBroker:
    """Broker contract over Redis PUBLISH/SUBSCRIBE; channel names carry the deployment prefix."""

    def __init__(self, url: str, prefix: str, deliver: Deliver) -> None:
        self._url = url
        self._prefix = prefix
        self._deliver = deliver
        self._refs: Counter[str] = Counter()
        self._publisher = Redis.from_url(url)
        self._sub = Redis.from_url(url)
        self._pubsub = self._sub.pubsub(ignore_subscribe_messages=True)
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self.reconnects = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="gigwire-broker-listener")

    async def publish(self, channel: str, data: bytes) -> None:
        await self._publisher.publish(self._prefix + channel, data)

    async def subscribe(self, channel: str) -> None:
        self._refs[channel] += 1
        if self._refs[channel] == 1 and self._connected.is_set():
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.subscribe(self._prefix + channel)

    async def unsubscribe(self, channel: str) -> None:
        if self._refs[channel] <= 0:
            return
        self._refs[channel] -= 1
        if self._refs[channel] == 0:
            del self._refs[channel]
            if self._connected.is_set():
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.unsubscribe(self._prefix + channel)

    async def ping(self) -> None:
        await self._publisher.ping()

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, 5)
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        await self._sub.aclose()
        await self._publisher.aclose()

    async def _listen(self) -> None:
        delay = 1.0
        cut = len(self._prefix)
        while not self._closing:
            try:
                channels = [self._prefix + c for c in self._refs]
                # A placeholder subscription keeps the connection in pub/sub mode with no channels.
                await self._pubsub.subscribe(self._prefix + "_", *channels)
                self._connected.set()
                delay = 1.0
                while not self._closing:
                    # A finite timeout: redis-py can swallow a cancellation inside an unbounded read.
                    message = await self._pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        self._deliver(message["channel"].decode()[cut:], message["data"])
                    except Exception:
                        log.exception("delivery failed", extra={"channel": message.get("channel")})
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._connected.clear()
                self.reconnects += 1
                log.warning(
                    "broker connection lost; reconnecting",
                    extra={"error": repr(exc), "retryInS": round(delay, 1)},
                )
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.reset()
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 60.0)
