"""The Broker contract: carries published bytes to every process subscribed to a channel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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
    # Reference-counted per channel; returns once messages published from then on are delivered
    # (or at once while disconnected: the subscription is made on reconnect, then on_reconnect fires).
    async def subscribe(self, channel: str) -> None: ...
    async def unsubscribe(self, channel: str) -> None: ...
    async def ping(self) -> None: ...  # raises when the broker cannot be reached
    async def close(self) -> None: ...
    def on_reconnect(self, callback: Reconnected) -> None: ...  # register a reconnect listener


BrokerFactory = Callable[[str, str, Deliver], Awaitable[Broker]]


def create_broker(url: str, prefix: str, deliver: Deliver) -> Broker:
    """The broker for `url`: `memory://` for one process, `redis://`/`rediss://` to fan out (through
    sharded pub/sub when the URL names a Redis Cluster node, found out at start)."""
    if url.startswith("memory://"):
        from hub.broker_memory import MemoryBroker

        return MemoryBroker(deliver)
    if url.startswith(("redis://", "rediss://")):
        from hub.broker_redis_auto import RedisAutoBroker

        return RedisAutoBroker(url, prefix, deliver)
    raise ValueError(f"unsupported broker URL {url!r}: use memory://, redis:// or rediss://")
