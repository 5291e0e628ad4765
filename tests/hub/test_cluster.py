"""The hub on a 3-node Redis Cluster (loopback, no replicas): sharded pub/sub across nodes, the
Store (rate limits, presence) routed by slot, and a primary restart healed from PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from hub.broker import Broker
from hub.broker_redis import RedisBroker
from hub.broker_redis_auto import RedisAutoBroker
from hub.broker_redis_cluster import RedisClusterBroker
from hub.brokers import create_broker
from hub.keys import BROKER, STORE
from hub.presence import is_online, is_watching
from hub.publish import publish_event
from hub.settings import Settings
from hub.store import create_store
from tests.factories import make_order, make_user
from tests.hub.conftest import NodeFactory, Pair
from tests.hub.test_two_nodes import FAST, collect
from tests.services import RedisServer, free_port

CLUSTER_ARGS = [
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "2000",
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[RedisServer]]:
    """Three primaries on loopback ports covering all 16384 slots."""
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is not installed")
    servers = [RedisServer(port=_cluster_port(), extra=CLUSTER_ARGS) for _ in range(3)]
    try:
        for server in servers:
            server.start()
        addresses = [f"127.0.0.1:{s.port}" for s in servers]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        _wait_cluster_ok(servers[0].port)
        yield servers
    finally:
        for server in servers:
            server.cleanup()


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too; Redis refuses ports above 55535."""
    for _ in range(200):
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _wait_cluster_ok(port: int) -> None:
    for _ in range(200):
        out = subprocess.run(
            ["redis-cli", "-p", str(port), "cluster", "info"],
            check=False,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        if "cluster_state:ok" in out:
            return
        subprocess.run(["sleep", "0.05"], check=True)
    raise RuntimeError("the cluster did not reach cluster_state:ok")


@pytest.fixture
def cluster_url(cluster: list[RedisServer]) -> str:
    return cluster[0].url


@pytest.fixture
async def outside(cluster_url: str, settings: Settings) -> AsyncIterator[Broker]:
    """A broker of another process (a worker), publishing into the cluster."""
    broker = create_broker(cluster_url, settings.redis_prefix, lambda channel, data: None)
    await broker.start()
    yield broker
    await broker.close()


async def test_cluster_is_detected_and_a_plain_redis_is_not(cluster_url: str, settings: Settings) -> None:
    assert settings.redis_url is not None
    for url, kind in [(cluster_url, RedisClusterBroker), (settings.redis_url, RedisBroker)]:
        broker = create_broker(url, settings.redis_prefix, lambda channel, data: None)
        assert isinstance(broker, RedisAutoBroker)
        await broker.start()
        try:
            assert isinstance(broker.inner, kind)
        finally:
            await broker.close()


async def test_message_sent_on_one_node_arrives_on_the_other_in_order(
    make_node: NodeFactory, pair: Pair, cluster_url: str
) -> None:
    a_node = await make_node(redis_url=cluster_url, **FAST)
    b_node = await make_node(redis_url=cluster_url, **FAST)
    broker = a_node.app[BROKER]
    assert isinstance(broker, RedisAutoBroker) and isinstance(broker.inner, RedisClusterBroker)
    a = await a_node.connect(pair.client, subscribe=pair.order_id)
    b = await b_node.connect(pair.doer, subscribe=pair.order_id)
    for i in range(30):
        await a.send("CHAT_MESSAGE", {"orderId": pair.order_id, "text": f"m{i}"})
    assert await collect(b, 30) == list(range(1, 31))
    assert await collect(a, 30) == list(range(1, 31))


async def test_many_orders_spread_over_the_primaries_each_in_order(
    make_node: NodeFactory, pool: asyncpg.Pool, settings: Settings, cluster_url: str, outside: Broker
) -> None:
    a_node = await make_node(redis_url=cluster_url, **FAST)
    b_node = await make_node(redis_url=cluster_url, **FAST)
    client, doer = await make_user(pool, settings), await make_user(pool, settings)
    orders = [await make_order(pool, client, doer) for _ in range(6)]
    senders = [await a_node.connect(client, subscribe=o) for o in orders]
    readers = [await b_node.connect(doer, subscribe=o) for o in orders]
    inner = b_node.app[BROKER]
    assert isinstance(inner, RedisAutoBroker) and isinstance(inner.inner, RedisClusterBroker)
    assert len(inner.inner._shards) >= 2  # six orders' channels hash to more than one primary
    for i in range(10):
        for order_id, sender in zip(orders, senders, strict=True):
            await sender.send("CHAT_MESSAGE", {"orderId": order_id, "text": f"m{i}"})
    for reader in readers:
        assert await collect(reader, 10) == list(range(1, 11))
    # A server event from another process reaches the user feed on both nodes.
    update = {"orderId": orders[0], "status": "submitted", "updatedAt": 1_700_000_000_000}
    await publish_event(outside, f"user:{client.id}", "ORDER_UPDATE", update)
    for conn in senders[:1]:
        assert (await conn.expect("ORDER_UPDATE"))["data"] == update


async def test_store_on_the_cluster_is_shared_and_routes_keys(
    make_node: NodeFactory, pair: Pair, cluster_url: str, settings: Settings
) -> None:
    a_node = await make_node(redis_url=cluster_url)
    b_node = await make_node(redis_url=cluster_url)
    a_store, b_store = a_node.app[STORE], b_node.app[STORE]
    # Rate-limit windows: both processes count into the same key.
    assert (await a_store.hit("rl:test:x", 60))[0] == 1
    assert (await b_store.hit("rl:test:x", 60))[0] == 2
    keys = [f"k{i}" for i in range(20)]  # spread over every primary
    for key in keys[::2]:
        await a_store.set(key, b"v", 30)
    assert await b_store.exists_many(keys) == [i % 2 == 0 for i in range(20)]
    assert await b_store.get("k0") == b"v"
    await b_store.delete("k0")
    assert await a_store.get("k0") is None
    await a_store.members_touch({f"set{i}": [f"m{i}"] for i in range(10)}, 30)
    assert [await b_store.members(f"set{i}") for i in range(10)] == [[f"m{i}"] for i in range(10)]
    # The keys live on the cluster, each on the primary owning its slot.
    direct = RedisCluster.from_url(cluster_url)
    try:
        assert await direct.get(settings.redis_prefix + "k2") == b"v"
        assert int(await direct.get(settings.redis_prefix + "rl:test:x")) == 2
    finally:
        await direct.aclose()
    # Presence written on one node is read on the other.
    conn = await a_node.connect(pair.client, subscribe=pair.order_id)
    assert await is_online(b_store, pair.client.id)
    assert await is_watching(b_store, pair.client.id, pair.order_id)
    await conn.ws.close()


async def test_a_burst_of_store_calls_waits_for_the_pool_instead_of_failing(settings: Settings) -> None:
    client = Redis.from_url(settings.redis_url or "", max_connections=4)
    try:
        store = create_store(client, settings.redis_prefix + "burst:")
        results = await asyncio.gather(*(store.hit("w", 60) for _ in range(60)))
        assert sorted(count for count, _ in results) == list(range(1, 61))
        await asyncio.gather(*(store.members_touch({f"p{i}": ["m"]}, 30) for i in range(40)))
        assert await store.members("p39") == ["m"]
    finally:
        await client.aclose()


async def test_a_plain_redis_store_stays_plain(settings: Settings) -> None:
    client = Redis.from_url(settings.redis_url or "")
    try:
        store = create_store(client, settings.redis_prefix + "plain:")
        assert (await store.hit("w", 60))[0] == 1
        assert await client.exists(settings.redis_prefix + "plain:w") == 1
        await store.delete("w")
    finally:
        await client.aclose()


async def test_primary_restart_loses_nothing_acknowledged(
    make_node: NodeFactory, pair: Pair, cluster: list[RedisServer], cluster_url: str
) -> None:
    a_node = await make_node(redis_url=cluster_url, **FAST)
    b_node = await make_node(redis_url=cluster_url, **FAST)
    a = await a_node.connect(pair.client, subscribe=pair.order_id)
    b = await b_node.connect(pair.doer, subscribe=pair.order_id)
    await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "before"})
    assert await collect(b, 1) == [1]
    broker = b_node.app[BROKER]
    assert isinstance(broker, RedisAutoBroker) and isinstance(broker.inner, RedisClusterBroker)
    channel = f"order:{pair.order_id}"
    owner = broker.inner._where[broker.inner._prefix + channel].name
    server = next(s for s in cluster if f"127.0.0.1:{s.port}" == owner)
    server.stop()
    try:
        # Sent while the owning primary is down: stored in PostgreSQL, the publish fails.
        for i in range(3):
            await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": f"down{i}"})
    finally:
        server.start()  # same port and nodes.conf: the same primary with the same slots
    _wait_cluster_ok(server.port)
    assert await collect(b, 3, within=30) == [2, 3, 4]
    await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "after"})
    assert await collect(b, 1, within=15) == [5]


def _cli(port: int, *args: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-p", str(port), *args], check=True, capture_output=True, text=True, timeout=10
    )
    return done.stdout.strip()


async def test_moved_slot_is_followed_and_its_messages_arrive(
    make_node: NodeFactory, pair: Pair, cluster: list[RedisServer], cluster_url: str
) -> None:
    a_node = await make_node(redis_url=cluster_url, **FAST)
    b_node = await make_node(redis_url=cluster_url, **FAST)
    a = await a_node.connect(pair.client, subscribe=pair.order_id)
    b = await b_node.connect(pair.doer, subscribe=pair.order_id)
    await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "before"})
    assert await collect(b, 1) == [1]
    broker = b_node.app[BROKER]
    assert isinstance(broker, RedisAutoBroker) and isinstance(broker.inner, RedisClusterBroker)
    inner = broker.inner
    name = inner._prefix + f"order:{pair.order_id}"
    slot = key_slot(name.encode())
    source = next(s for s in cluster if f"127.0.0.1:{s.port}" == inner._where[name].name)
    target = next(s for s in cluster if s is not source)
    source_id, target_id = _cli(source.port, "cluster", "myid"), _cli(target.port, "cluster", "myid")
    # Move the (keyless) slot of the order's channel to another primary, as a resharding would.
    _cli(target.port, "cluster", "setslot", str(slot), "importing", source_id)
    _cli(source.port, "cluster", "setslot", str(slot), "migrating", target_id)
    for server in cluster:
        _cli(server.port, "cluster", "setslot", str(slot), "node", target_id)
    async with asyncio.timeout(15):
        while (where := inner._where.get(name)) is None or where.name != f"127.0.0.1:{target.port}":  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    for i in range(3):
        await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": f"after{i}"})
    assert await collect(b, 3, within=15) == [2, 3, 4]
