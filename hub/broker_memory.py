"""The in-process broker: one process, no network; delivery is a direct call."""

from __future__ import annotations

from collections import Counter

from hub.broker import Deliver, Reconnected


class MemoryBroker:
    """Delivers each publish to this process's callback when the channel is subscribed."""

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._refs: Counter[str] = Counter()

    async def start(self) -> None:
        return None

    async def publish(self, channel: str, data: bytes) -> None:
        if self._refs[channel] > 0:
            self._deliver(channel, data)

    async def subscribe(self, channel: str) -> None:
        self._refs[channel] += 1

    async def unsubscribe(self, channel: str) -> None:
        if self._refs[channel] <= 1:
            self._refs.pop(channel, None)
        else:
            self._refs[channel] -= 1

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._refs.clear()

    def on_reconnect(self, callback: Reconnected) -> None:
        """In-process delivery never disconnects: the callback is never called."""
        return None
