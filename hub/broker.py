"""The Broker contract: carries published bytes to every process subscribed to a channel.
hub/brokers.py picks the implementation for a URL (`create_broker`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

# The hub's delivery callback: (channel without prefix, payload bytes).
Deliver = Callable[[str, bytes], None]
# Called after the broker lost its connection and has subscribed again: messages published in
# between were lost, so the hub catches its order channels up from PostgreSQL.
Reconnected = Callable[[], None]


class Broker(Protocol):
    """Carries published bytes to every process subscribed to a channel, this one included.
    Delivery goes to the single callback the hub hands over when the broker is created."""

    async def start(self) -> None: ...
    async def publish(self, channel: str, data: bytes) -> None: ...
    # Several messages in one round trip where the broker can (a pipeline), in the given order.
    async def publish_many(self, messages: list[tuple[str, bytes]]) -> None: ...
    # Reference-counted per channel; returns once messages published from then on are delivered
    # (or at once while disconnected: the subscription is made on reconnect, then on_reconnect fires).
    async def subscribe(self, channel: str) -> None: ...
    async def unsubscribe(self, channel: str) -> None: ...
    async def ping(self) -> None: ...  # raises when the broker cannot be reached
    async def close(self) -> None: ...
    def on_reconnect(self, callback: Reconnected) -> None: ...  # register a reconnect listener


BrokerFactory = Callable[[str, str, Deliver], Awaitable[Broker]]


class ChannelRefs:
    """Reference counts of subscribed channels: a broker subscribes on a channel's first
    reference and unsubscribes on its last. Iterating gives the channels with references."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def add(self, channel: str) -> bool:
        """Count one reference; True when it is the channel's first."""
        count = self._counts.get(channel, 0) + 1
        self._counts[channel] = count
        return count == 1

    def drop(self, channel: str) -> bool:
        """Release one reference (none held: nothing happens); True when it was the last."""
        count = self._counts.get(channel, 0)
        if count <= 1:
            return self._counts.pop(channel, None) is not None
        self._counts[channel] = count - 1
        return False

    def __contains__(self, channel: object) -> bool:
        return channel in self._counts

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._counts))

    def __len__(self) -> int:
        return len(self._counts)

    def clear(self) -> None:
        self._counts.clear()
