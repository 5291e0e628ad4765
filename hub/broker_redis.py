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
from hub.broker_pubsub import PubSubListener
from hub.logs import outage

log = logging.getLogger("gigwire.broker")


class RedisBroker(PubSubListener):
    """Broker contract over Redis PUBLISH/SUBSCRIBE; channel names carry the deployment prefix."""

    def __init__(self, url: str, prefix: str, deliver: Deliver) -> None:
        self._sub = Redis.from_url(url, socket_connect_timeout=2)
        # Subscribe confirmations are read too: they tell `subscribe` its channel is live.
        super().__init__(self._sub.pubsub())
        self._prefix = prefix
        self._cut = len(prefix)
        self._placeholder = prefix + "_"
        self._deliver = deliver
        self._refs = ChannelRefs()
        self._publisher = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._callbacks: list[Reconnected] = []
        self.reconnects = 0

    def on_reconnect(self, callback: Reconnected) -> None:
        """Call `callback` each time the listener has subscribed again after a lost connection."""
        self._callbacks.append(callback)

    async def start(self) -> None:
        """Start the listener; wait up to 5 s for its first connection (it keeps trying after)."""
        self._start_listening("gigwire-broker-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), 5)

    async def publish(self, channel: str, data: bytes) -> None:
        """PUBLISH; raises RedisError/OSError when Redis cannot be reached."""
        await self._publisher.publish(self._prefix + channel, data)

    async def publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        """PUBLISH each, in order, in one pipeline (one round trip)."""
        async with self._publisher.pipeline(transaction=False) as pipe:
            for channel, data in messages:
                pipe.publish(self._prefix + channel, data)
            await pipe.execute()

    async def subscribe(self, channel: str) -> None:
        """Count one reference; the first one subscribes and waits for Redis's confirmation."""
        if not self._refs.add(channel) or not self._connected.is_set():
            return
        name = self._prefix + channel
        try:
            await self._confirmations.wait(name, lambda: self._pubsub.subscribe(name))
        except (RedisError, OSError, TimeoutError, AttributeError) as exc:
            # The listener sees the lost connection and subscribes every counted channel again.
            # AttributeError: redis-py's PubSub sending on a connection its listener just tore down
            # (`'NoneType' object has no attribute 'writelines'`, seen in the soak's Redis restart).
            outage(log, "subscribe not confirmed", channel=channel, error=repr(exc))

    async def unsubscribe(self, channel: str) -> None:
        """Drop one reference; the last one unsubscribes."""
        if self._refs.drop(channel) and self._connected.is_set():
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(self._prefix + channel)

    async def ping(self) -> None:
        await self._publisher.ping()

    async def close(self) -> None:
        await self._stop_listening()
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

    async def _subscribe_all(self) -> None:
        channels = [self._prefix + c for c in self._refs]
        # The placeholder keeps the connection in pub/sub mode with no channels, and its
        # confirmation marks the moment every channel below is subscribed.
        await self._pubsub.subscribe(self._placeholder, *channels)
