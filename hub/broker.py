"""The Broker contract: carries published bytes to every process subscribed to a channel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

# The hub's delivery callback: (channel without prefix, payload bytes).
Deliver = Callable[[str, bytes], None]


class Broker(Protocol):
    """Carries published bytes to every process subscribed to a channel, this one included.
    Delivery goes to the single callback the hub hands over when the broker is created."""

    async def start(self) -> None: ...
    async def publish(self, channel: str, data: bytes) -> None: ...
    async def subscribe(self, channel: str) -> None: ...  # idempotent per channel, reference-counted
    async def unsubscribe(self, channel: str) -> None: ...
    async def ping(self) -> None: ...  # raises when the broker cannot be reached
    async def close(self) -> None: ...


BrokerFactory = Callable[[str, str, Deliver], Awaitable[Broker]]


def create_broker(url: str, prefix: str, deliver: Deliver) -> Broker:
    """The broker for `url`: `memory://` for one process, `redis://`/`rediss://` to fan out."""
    if url.startswith("memory://"):
        from hub.broker_memory import MemoryBroker

        return MemoryBroker(deliver)
    if url.startswith(("redis://", "rediss://")):
        from hub.broker_redis import RedisBroker

        return RedisBroker(url, prefix, deliver)
    raise ValueError(f"unsupported broker URL {url!r}: use memory://, redis:// or rediss://")
