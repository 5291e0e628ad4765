"""The in-process broker: one process, no network; delivery is a direct call."""

from __future__ import annotations

from hub.broker import ChannelRefs, Deliver, Reconnected


class MemoryBroker:
    """Delivers each publish to this process's callback when the channel is subscribed."""

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._refs = ChannelRefs()

    async def start(self) -> None:
        return None

    async def publish(self, channel: str, data: bytes) -> None:
        if channel in self._refs:
            self._deliver(channel, data)

    async def publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        for channel, data in messages:
            await self.publish(channel, data)

    async def subscribe(self, channel: str) -> None:
        self._refs.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._refs.drop(channel)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._refs.clear()

    def on_reconnect(self, callback: Reconnected) -> None:
        """In-process delivery never disconnects: the callback is never called."""
        return None
