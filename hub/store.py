"""The Store contract: small shared state with expiry (rate-limit windows, throttles, presence).
Redis when configured, so every process sees the same counts; in-process memory otherwise."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol


class Store(Protocol):
    """Keys are given without the deployment prefix; implementations add it."""

    async def hit(self, key: str, window_s: int) -> tuple[int, float]:
        """Count one hit in the fixed window of `key`; return (hits so far, seconds until reset)."""
        ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store `value` under `key` for `ttl_s` seconds."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The live value of `key`, or None."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key` if present."""
        ...

    async def exists_many(self, keys: list[str]) -> list[bool]:
        """For each key, whether it is live."""
        ...

    async def members_touch(self, entries: dict[str, list[str]], ttl_s: float) -> None:
        """For each set key, add or refresh its members, each live for `ttl_s` from now (presence)."""
        ...

    async def members_remove(self, key: str, members: list[str]) -> None:
        """Remove members from the set `key` at once."""
        ...

    async def members(self, key: str) -> list[str]:
        """The live members of the set `key`."""
        ...


def create_store(redis_client: object | None, prefix: str) -> Store:
    """A Redis store over `redis_client` when given (over its whole cluster when it is a Redis
    Cluster node, found out on first use), else an in-process one."""
    if redis_client is None:
        from hub.store_memory import MemoryStore

        return MemoryStore()
    from hub.store_redis_cluster import DetectingRedisStore

    return DetectingRedisStore(redis_client, prefix)  # type: ignore[arg-type]


async def close_store(store: Store) -> None:
    """Close the connections `store` opened itself (the cluster client of a Redis store on a Redis
    Cluster); the client handed to `create_store` stays the caller's to close."""
    aclose: Callable[[], Awaitable[None]] | None = getattr(store, "aclose", None)
    if aclose is not None:
        await aclose()
