"""The in-process Store: a dict with expiry times, for the one-process default."""

from __future__ import annotations

import time


class MemoryStore:
    """Store contract in memory; expired keys are dropped lazily and by an occasional sweep."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float]] = {}
        self._counts: dict[str, tuple[int, float]] = {}
        self._sets: dict[str, dict[str, float]] = {}
        self._ops = 0

    def _sweep(self, now: float) -> None:
        self._ops += 1
        if self._ops % 1024:
            return
        self._data = {k: v for k, v in self._data.items() if v[1] > now}
        self._counts = {k: v for k, v in self._counts.items() if v[1] > now}

    async def hit(self, key: str, window_s: int) -> tuple[int, float]:
        now = time.monotonic()
        self._sweep(now)
        count, reset = self._counts.get(key, (0, 0.0))
        if reset <= now:
            count, reset = 0, now + window_s
        count += 1
        self._counts[key] = (count, reset)
        return count, reset - now

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        now = time.monotonic()
        self._sweep(now)
        self._data[key] = (value, now + ttl_s)

    async def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None or item[1] <= time.monotonic():
            return None
        return item[0]

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)
        self._counts.pop(key, None)

    async def exists_many(self, keys: list[str]) -> list[bool]:
        now = time.monotonic()
        return [(item := self._data.get(k)) is not None and item[1] > now for k in keys]

    async def members_touch(self, entries: dict[str, list[str]], ttl_s: float) -> None:
        expires = time.monotonic() + ttl_s
        for key, members in entries.items():
            live = self._sets.setdefault(key, {})
            for member in members:
                live[member] = expires

    async def members_remove(self, key: str, members: list[str]) -> None:
        live = self._sets.get(key)
        if live is None:
            return
        for member in members:
            live.pop(member, None)
        if not live:
            del self._sets[key]

    async def members(self, key: str) -> list[str]:
        now = time.monotonic()
        live = self._sets.get(key)
        if live is None:
            return []
        for member in [m for m, t in live.items() if t <= now]:
            del live[member]
        if not live:
            del self._sets[key]
        return list(live)
