"""The Redis Cluster broker: sharded pub/sub (SPUBLISH/SSUBSCRIBE), so every message travels only
through the primary that owns its channel's key slot, and adding primaries adds pub/sub capacity.

Detection: REDIS_URL stays a `redis://` (or `rediss://`) URL naming any node; `create_broker` hands
it to `RedisAutoBroker` (hub/broker_redis_auto.py), which asks that node `INFO cluster` at start and
then runs either the plain `RedisBroker` or this one. Subscriptions are held per primary (`_Shard`:
one connection, its own listener that reconnects with backoff like `RedisBroker`'s), each channel on
the primary that owns its slot. A lost connection or a slot moved away (the server's unsolicited
`sunsubscribe`) makes the broker re-read the slot map and subscribe each channel where it lives now;
once every channel of a shard is confirmed again, the reconnect listeners run (the hub catches its
orders up from PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import RedisError

from hub.broker import ChannelRefs, Deliver, Reconnected
from hub.broker_pubsub import PubSubListener

log = logging.getLogger("gigwire.broker")


class _Shard(PubSubListener):
    """The subscriptions held on one primary: one connection, one listener task."""

    _loop_name = "broker-shard"
    _lost_message = "shard connection lost; reconnecting"

    def __init__(self, owner: RedisClusterBroker, host: str, port: int, kwargs: dict[str, Any]) -> None:
        # No silent retries: a reconnect must go through the listener, which re-subscribes slot by
        # slot and tells the hub that messages may have been lost.
        self._client = Redis(host=host, port=port, retry=Retry(NoBackoff(), 0), **kwargs)
        super().__init__(self._client.pubsub())
        self.owner = owner
        self.name = f"{host}:{port}"
        self.channels: set[str] = set()  # full channel names routed to this primary
        self._leaving: set[str] = set()  # our own sunsubscribes not yet confirmed
        self._unconfirmed: set[str] = set()  # re-subscriptions after a loss not yet confirmed
        self._start_listening(f"gigwire-shard-{self.name}")

    async def add(self, name: str) -> None:
        """Subscribe `name` here; returns once confirmed (or at once while disconnected)."""
        self.channels.add(name)
        self._leaving.discard(name)
        if not self._connected.is_set():
            return
        try:
            await self._confirmations.wait(name, lambda: self._pubsub.ssubscribe(name))
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("shard subscribe not confirmed", extra={"channel": name, "error": repr(exc)})

    async def remove(self, name: str) -> None:
        """Unsubscribe `name` here."""
        self.channels.discard(name)
        if self._connected.is_set():
            self._leaving.add(name)
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.sunsubscribe(name)

    async def close(self) -> None:
        await self._stop_listening()
        await self._client.aclose()

    async def _subscribe_all(self) -> None:
        # The placeholder keeps the connection in pub/sub mode with no channels; SSUBSCRIBE takes
        # channels of one slot per command.
        await self._pubsub.subscribe(self.owner.placeholder)
        by_slot: dict[int, list[str]] = defaultdict(list)
        for name in self.channels:
            by_slot[key_slot(name.encode())].append(name)
        self._unconfirmed = set(self.channels)
        for names in by_slot.values():
            await self._pubsub.ssubscribe(*names)
        if self._lost and not self._unconfirmed:
            self._recovered()

    def _recovered(self) -> None:
        self._lost = False
        self.owner.recovered(self)

    def _handle(self, message: dict[str, Any]) -> None:
        try:
            self._dispatch(message)
        except Exception:  # a bad message or a hub bug must not end the listener
            log.exception("shard delivery failed", extra={"shard": self.name})

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel = message.get("channel")
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if kind == "smessage":
            self.owner.deliver(name, message["data"])
        elif kind == "ssubscribe":
            self._confirmations.confirm(name)
            if self._unconfirmed:
                self._unconfirmed.discard(name)
                if self._lost and not self._unconfirmed:
                    self._recovered()
        elif kind == "sunsubscribe":
            if name in self._leaving:
                self._leaving.discard(name)
            elif name in self.channels:
                # Not asked for: the slot moved to another primary. Route it again.
                self.channels.discard(name)
                self.owner.moved(name)

    def _log_extra(self) -> dict[str, object]:
        return {"shard": self.name}

    def _on_lost(self) -> None:
        # Counted on the broker too, since shards come and go. The primary may have failed over:
        # the broker re-reads the slot map.
        self.owner.failures += 1
        self.owner.lost(self)


class RedisClusterBroker:
    """Broker contract over a Redis Cluster's sharded pub/sub; channel names carry the prefix."""

    def __init__(self, url: str, prefix: str, deliver: Deliver) -> None:
        self._prefix = prefix
        self.placeholder = prefix + "_"
        self._deliver = deliver
        self._cut = len(prefix)
        self._cluster = RedisCluster.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._refs = ChannelRefs()
        self._shards: dict[str, _Shard] = {}
        self._where: dict[str, _Shard] = {}  # full channel name -> the shard holding it
        self._callbacks: list[Reconnected] = []
        self._reroute: asyncio.Task[None] | None = None
        self.reconnects = 0
        self.failures = 0
        """Shard listener failures (each logged and followed by a reconnect), for tests and diagnosis."""

    def on_reconnect(self, callback: Reconnected) -> None:
        """Call `callback` each time a shard has subscribed again after losing messages."""
        self._callbacks.append(callback)

    async def start(self) -> None:
        """Read the slot map (raises when no node answers)."""
        await self._cluster.initialize()

    async def publish(self, channel: str, data: bytes) -> None:
        """SPUBLISH to the primary owning the channel's slot."""
        await self._cluster.spublish(self._prefix + channel, data)

    async def publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        """SPUBLISH each to its slot's primary (channels of one batch live on different shards)."""
        for channel, data in messages:
            await self.publish(channel, data)

    async def subscribe(self, channel: str) -> None:
        """Count one reference; the first one subscribes on the owning primary and waits for it."""
        if self._refs.add(channel):
            try:
                await self._place(self._prefix + channel)
            except (RedisError, OSError) as exc:
                # The reroute re-reads the slot map and places every counted channel not placed yet.
                log.warning("shard subscribe failed", extra={"channel": channel, "error": repr(exc)})
                self._schedule_reroute()

    async def unsubscribe(self, channel: str) -> None:
        """Drop one reference; the last one unsubscribes."""
        if self._refs.drop(channel):
            shard = self._where.pop(self._prefix + channel, None)
            if shard is not None:
                await shard.remove(self._prefix + channel)

    async def ping(self) -> None:
        await self._cluster.ping()

    async def close(self) -> None:
        if self._reroute is not None:
            self._reroute.cancel()
        for shard in list(self._shards.values()):
            await shard.close()
        self._shards.clear()
        await self._cluster.aclose()

    # -- called by shards --------------------------------------------------------------------------

    def deliver(self, name: str, data: bytes) -> None:
        """A shard's message: hand it to the hub without the prefix."""
        try:
            self._deliver(name[self._cut :], data)
        except Exception:
            log.exception("delivery failed", extra={"channel": name})

    def recovered(self, shard: _Shard) -> None:
        """`shard` lost its connection and every one of its channels is subscribed again."""
        self.reconnects += 1
        log.warning("shard reconnected and re-subscribed", extra={"shard": shard.name})
        self._notify()

    def lost(self, shard: _Shard) -> None:
        """`shard`'s connection dropped: the primary may have failed over, so re-read the slot map."""
        self._schedule_reroute()

    def moved(self, name: str) -> None:
        """The server dropped `name` from a shard (its slot moved): subscribe it where it lives now."""
        self._where.pop(name, None)
        self._schedule_reroute()

    # -- routing -----------------------------------------------------------------------------------

    def _owner(self, name: str) -> ClusterNode:
        node = self._cluster.get_node_from_key(name)
        if node is None:
            raise RedisError(f"no primary owns the slot of {name!r}")
        return node

    async def _place(self, name: str) -> None:
        node = self._owner(name)
        shard = self._shards.get(node.name)
        if shard is None:
            shard = self._shards[node.name] = _Shard(self, node.host, int(node.port), self._node_kwargs())
        self._where[name] = shard
        await shard.add(name)

    def _node_kwargs(self) -> dict[str, Any]:
        kwargs = self._cluster.get_connection_kwargs()
        keep = ("username", "password", "ssl", "ssl_ca_certs", "ssl_cert_reqs", "socket_connect_timeout")
        return {k: v for k, v in kwargs.items() if k in keep and v is not None}

    def _schedule_reroute(self) -> None:
        if self._reroute is None or self._reroute.done():
            self._reroute = asyncio.get_running_loop().create_task(self._rerouted(), name="gigwire-reroute")

    async def _rerouted(self) -> None:
        """Re-read the slot map and move every channel to the primary owning its slot now."""
        await asyncio.sleep(0.5)  # let a failover settle
        for attempt in range(10):
            try:
                # RedisCluster.initialize() reads the slot map once only; the nodes manager re-reads it.
                await self._cluster.nodes_manager.initialize()
                break
            except (RedisError, OSError) as exc:
                log.warning("slot map refresh failed", extra={"error": repr(exc), "attempt": attempt})
                await asyncio.sleep(min(2**attempt, 30))
        moved = failed = False
        for channel in list(self._refs):
            name = self._prefix + channel
            try:
                owner = self._owner(name).name
                current = self._where.get(name)
                if current is not None and current.name == owner:
                    continue
                moved = True
                if current is not None:
                    await current.remove(name)
                await self._place(name)
            except (RedisError, OSError) as exc:
                failed = True
                log.warning("shard re-route failed", extra={"channel": channel, "error": repr(exc)})
        for key, shard in list(self._shards.items()):
            if not shard.channels:
                del self._shards[key]
                await shard.close()
        if moved:
            self.reconnects += 1
            self._notify()  # messages published while a channel was moving may be lost
        if failed:
            await asyncio.sleep(2.0)
            self._reroute = None
            self._schedule_reroute()

    def _notify(self) -> None:
        for callback in self._callbacks:
            try:
                callback()
            except Exception:
                log.exception("reconnect listener failed")
