"""The Redis Store on either a single Redis or a Redis Cluster, found out on first use.

REDIS_URL stays a `redis://` URL naming any node. The web process and the workers hand `create_store`
a plain client for it; on its first call this store asks that node `INFO cluster` and, on a cluster,
runs `RedisStore` over a cluster client built from the same connection settings, so every key goes
to the primary owning its slot (rate-limit windows, throttles, presence sets; each command touches
one key, and pipelines are split per slot by the cluster client)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from hub.store_redis import RedisStore

log = logging.getLogger("gigwire.store")


def cluster_client(client: Redis) -> RedisCluster:
    """A cluster client reaching the cluster through the node `client` points at, with its
    credentials and TLS setting."""
    kwargs = client.connection_pool.connection_kwargs
    options: dict[str, Any] = {
        "host": kwargs.get("host", "127.0.0.1"),
        "port": int(kwargs.get("port", 6379)),
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }
    for key in ("username", "password"):
        if kwargs.get(key) is not None:
            options[key] = kwargs[key]
    if issubclass(client.connection_pool.connection_class, SSLConnection):
        options["ssl"] = True
    return RedisCluster(**options)


class DetectingRedisStore:
    """Store contract over `client`, or over the cluster it belongs to when it is a cluster node."""

    def __init__(self, client: Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._store: RedisStore | None = None
        self._cluster: RedisCluster | None = None
        self._closed = False
        self._lock = asyncio.Lock()
        # A plain pool (the workers' client; the cluster client's pool per node) refuses a call past
        # its size (MaxConnectionsError) instead of waiting: in a burst of connects, presence writes
        # would fail. Calls past it wait here instead. (The web process's client waits by itself.)
        size = getattr(client.connection_pool, "max_connections", None)
        self._gate = asyncio.Semaphore(size if isinstance(size, int) and 0 < size < 2**31 else 100)

    async def _resolve(self) -> RedisStore:
        if self._closed:
            raise RedisConnectionError("the store is closed")
        if self._store is not None:
            return self._store
        async with self._lock:
            if self._closed:
                raise RedisConnectionError("the store is closed")
            if self._store is None:
                # Raises like any other call while Redis is down; the probe is made again next call.
                info = await self._client.info("cluster")
                if info.get("cluster_enabled"):
                    self._cluster = cluster_client(self._client)
                    log.info("Redis Cluster detected: the store routes keys by slot")
                    # RedisStore uses commands both clients share; the cluster one routes them.
                    self._store = RedisStore(cast(Redis, self._cluster), self._prefix)
                else:
                    self._store = RedisStore(self._client, self._prefix)
            return self._store

    async def aclose(self) -> None:
        """Close the cluster client if one was made (the plain client belongs to the caller), once a
        probe under way has finished. Calls after this (and those still waiting for the gate) raise
        redis' ConnectionError, as while Redis is down, instead of opening a cluster client again."""
        async with self._lock:
            self._closed = True
            cluster, self._cluster, self._store = self._cluster, None, None
        if cluster is not None:
            with contextlib.suppress(RedisError, OSError):
                await cluster.aclose()

    async def hit(self, key: str, window_s: int) -> tuple[int, float]:
        async with self._gate:
            store = await self._resolve()
            return await store.hit(key, window_s)

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        async with self._gate:
            store = await self._resolve()
            await store.set(key, value, ttl_s)

    async def get(self, key: str) -> bytes | None:
        async with self._gate:
            store = await self._resolve()
            return await store.get(key)

    async def delete(self, key: str) -> None:
        async with self._gate:
            store = await self._resolve()
            await store.delete(key)

    async def exists_many(self, keys: list[str]) -> list[bool]:
        async with self._gate:
            store = await self._resolve()
            return await store.exists_many(keys)

    async def members_touch(self, entries: dict[str, list[str]], ttl_s: float) -> None:
        async with self._gate:
            store = await self._resolve()
            await store.members_touch(entries, ttl_s)

    async def members_remove(self, key: str, members: list[str]) -> None:
        async with self._gate:
            store = await self._resolve()
            await store.members_remove(key, members)

    async def members(self, key: str) -> list[str]:
        async with self._gate:
            store = await self._resolve()
            return await store.members(key)
