"""The `redis://` broker: finds out at start whether the URL names a Redis Cluster node (`INFO
cluster`) and runs the sharded `RedisClusterBroker` (hub/broker_redis_cluster.py) or the plain
`RedisBroker` (hub/broker_redis.py) accordingly."""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub.broker import Broker, Deliver, Reconnected

log = logging.getLogger("gigwire.broker")

_PROBE_FOR_S = 5.0


async def is_cluster(url: str) -> bool:
    """Whether the Redis at `url` runs in cluster mode (`INFO cluster`); raises when unreachable."""
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        info = await client.info("cluster")
    finally:
        await client.aclose()
    return bool(info.get("cluster_enabled"))


class RedisAutoBroker:
    """A `redis://` broker that finds out at start whether the URL names a Redis Cluster and then
    runs `RedisClusterBroker` or the plain `RedisBroker`, delegating everything to it."""

    def __init__(self, url: str, prefix: str, deliver: Deliver) -> None:
        self._url, self._prefix, self._deliver = url, prefix, deliver
        self._inner: Broker | None = None
        self._callbacks: list[Reconnected] = []

    @property
    def inner(self) -> Broker:
        """The broker chosen at start."""
        assert self._inner is not None, "start() first"
        return self._inner

    def on_reconnect(self, callback: Reconnected) -> None:
        self._callbacks.append(callback)
        if self._inner is not None:
            self._inner.on_reconnect(callback)

    async def start(self) -> None:
        """Probe the server for up to 5 s (a plain Redis when it never answers), then start."""
        cluster = False
        deadline = time.monotonic() + _PROBE_FOR_S
        while True:
            try:
                cluster = await is_cluster(self._url)
                break
            except (RedisError, OSError) as exc:
                if time.monotonic() > deadline:
                    log.warning("Redis unreachable at start; assuming no cluster", extra={"error": repr(exc)})
                    break
                await asyncio.sleep(0.2)
        inner: Broker
        if cluster:
            from hub.broker_redis_cluster import RedisClusterBroker

            inner = RedisClusterBroker(self._url, self._prefix, self._deliver)
        else:
            from hub.broker_redis import RedisBroker

            inner = RedisBroker(self._url, self._prefix, self._deliver)
        for callback in self._callbacks:
            inner.on_reconnect(callback)
        await inner.start()
        self._inner = inner

    async def publish(self, channel: str, data: bytes) -> None:
        await self.inner.publish(channel, data)

    async def publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        await self.inner.publish_many(messages)

    async def subscribe(self, channel: str) -> None:
        await self.inner.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        await self.inner.unsubscribe(channel)

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()
