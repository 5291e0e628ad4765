"""Choosing the broker for a URL (apart from the contract in hub/broker.py, which every
implementation imports)."""

from __future__ import annotations

from hub.broker import Broker, Deliver
from hub.broker_memory import MemoryBroker
from hub.broker_redis_auto import RedisAutoBroker


def create_broker(url: str, prefix: str, deliver: Deliver) -> Broker:
    """The broker for `url`: `memory://` for one process, `redis://`/`rediss://` to fan out (through
    sharded pub/sub when the URL names a Redis Cluster node, found out at start)."""
    if url.startswith("memory://"):
        return MemoryBroker(deliver)
    if url.startswith(("redis://", "rediss://")):
        return RedisAutoBroker(url, prefix, deliver)
    raise ValueError(f"unsupported broker URL {url!r}: use memory://, redis:// or rediss://")
