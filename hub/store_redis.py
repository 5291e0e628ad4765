"""The Redis Store: shared by every process of a deployment, keys under the deployment prefix."""

from __future__ import annotations

from redis.asyncio import Redis

from hub.clock import now_ms

# INCR and set the expiry on the first hit, atomically, so a crash never leaves a window without TTL.
_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
return {n, ttl}
"""


class RedisStore:
    """Store contract over one redis.asyncio client."""

    def __init__(self, client: Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._hit = client.register_script(_HIT)

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def hit(self, key: str, window_s: int) -> tuple[int, float]:
        count, ttl_ms = await self._hit(keys=[self._k(key)], args=[window_s * 1000])
        return int(count), max(int(ttl_ms), 0) / 1000.0

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._redis.set(self._k(key), value, px=max(int(ttl_s * 1000), 1))

    async def get(self, key: str) -> bytes | None:
        value = await self._redis.get(self._k(key))
        return value if value is None or isinstance(value, bytes) else str(value).encode()

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._k(key))

    async def exists_many(self, keys: list[str]) -> list[bool]:
        if not keys:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.exists(self._k(key))
            results = await pipe.execute()
        return [bool(r) for r in results]

    # Sets with per-member expiry: a sorted set scored by each member's expiry (epoch ms), swept on
    # every touch and read, and the key itself expiring with its newest member, so a crashed process's
    # members vanish within `ttl_s` even if nobody touches the key again.
    async def members_touch(self, entries: dict[str, list[str]], ttl_s: float) -> None:
        if not entries:
            return
        now = now_ms()
        ttl_ms = max(int(ttl_s * 1000), 1)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, members in entries.items():
                if not members:
                    continue
                k = self._k(key)
                pipe.zadd(k, dict.fromkeys(members, now + ttl_ms))
                pipe.zremrangebyscore(k, "-inf", now)
                pipe.pexpire(k, ttl_ms)
            await pipe.execute()

    async def members_remove(self, key: str, members: list[str]) -> None:
        if members:
            await self._redis.zrem(self._k(key), *members)

    async def members(self, key: str) -> list[str]:
        now = now_ms()
        found = await self._redis.zrangebyscore(self._k(key), now, "+inf")
        return [m.decode() if isinstance(m, bytes) else str(m) for m in found]
