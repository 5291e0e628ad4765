"""The web process's Redis clients: every one the app makes is closed at its cleanup (on a plain
Redis and on a Redis Cluster), and the shared client `app[REDIS]` waits a bounded time for a free
pooled connection instead of failing at once when all are busy."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError

from hub.app import create_redis
from hub.keys import REDIS, STORE
from hub.settings import Settings
from hub.store_redis_cluster import DetectingRedisStore
from tests.hub import test_cluster
from tests.hub.conftest import Node, NodeFactory
from tests.services import RedisServer

cluster = test_cluster.cluster  # the 3-primary loopback cluster fixture (its own, for this module)


@pytest.fixture(scope="module")
def plain() -> Iterator[RedisServer]:
    """A private plain Redis, so that its client count is this module's alone."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


async def _clients(ports: list[int]) -> int:
    """Connections the servers at `ports` hold from clients, without the one counting them."""
    total = 0
    for port in ports:
        probe = Redis(host="127.0.0.1", port=port)
        try:
            total += len(await probe.client_list()) - 1
        finally:
            await probe.aclose()
    return total


async def _settled(ports: list[int], expected: int, within: float = 10.0) -> int:
    """The client count once it equals `expected`, or the last one seen after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (count := await _clients(ports)) != expected and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return count


async def _run_app_and_clean_up(make_node: NodeFactory, url: str) -> tuple[Node, bool]:
    """Start an app on `url`, use its Store and shared client, then stop the app. Also returns
    whether the Store ran over a cluster client of its own."""
    node = await make_node(redis_url=url)
    store = node.app[STORE]
    for i in range(20):  # keys spread over every primary of a cluster
        await store.set(f"lifecycle:{i}", b"v", 30)
    assert await store.get("lifecycle:0") == b"v"
    redis = node.app[REDIS]
    assert redis is not None and await redis.ping()
    assert isinstance(store, DetectingRedisStore)
    own_cluster_client = store._cluster is not None
    await node.client.close()  # runs the app's cleanup contexts
    return node, own_cluster_client


async def test_every_redis_client_of_the_app_is_closed_at_cleanup_on_a_cluster(
    make_node: NodeFactory, cluster: list[RedisServer]
) -> None:
    ports = [server.port for server in cluster]
    before = await _clients(ports)
    _, own_cluster_client = await _run_app_and_clean_up(make_node, cluster[0].url)
    assert own_cluster_client
    assert await _settled(ports, before) == before


async def test_every_redis_client_of_the_app_is_closed_at_cleanup_on_a_plain_redis(
    make_node: NodeFactory, plain: RedisServer
) -> None:
    before = await _clients([plain.port])
    _, own_cluster_client = await _run_app_and_clean_up(make_node, plain.url)
    assert not own_cluster_client
    assert await _settled([plain.port], before) == before


async def test_a_store_closed_at_cleanup_does_not_reopen_a_cluster_client(
    make_node: NodeFactory, cluster: list[RedisServer]
) -> None:
    ports = [server.port for server in cluster]
    before = await _clients(ports)
    node, _ = await _run_app_and_clean_up(make_node, cluster[0].url)
    with pytest.raises(RedisConnectionError):
        await node.app[STORE].set("lifecycle:late", b"v", 30)
    assert await _settled(ports, before) == before


async def test_the_shared_client_keeps_the_pool_size_a_plain_client_would_have(
    make_node: NodeFactory, settings: Settings
) -> None:
    assert settings.redis_url is not None
    node = await make_node()
    redis = node.app[REDIS]
    assert redis is not None
    assert (
        redis.connection_pool.max_connections == ConnectionPool.from_url(settings.redis_url).max_connections
    )


async def test_fifty_concurrent_commands_through_a_pool_of_two_all_succeed(
    make_node: NodeFactory, settings: Settings
) -> None:
    assert settings.redis_url is not None
    node = await make_node(redis_url=_with_query(settings.redis_url, "max_connections=2"))
    redis = node.app[REDIS]
    assert redis is not None and redis.connection_pool.max_connections == 2
    key = f"{settings.redis_prefix}pool:{uuid.uuid4().hex}"
    try:
        counts = await asyncio.gather(*(redis.incr(key) for _ in range(50)))
        assert sorted(counts) == list(range(1, 51))
    finally:
        await redis.delete(key)


async def test_a_command_that_gets_no_connection_in_time_fails_clearly(settings: Settings) -> None:
    assert settings.redis_url is not None
    redis = create_redis(settings.redis_url, max_connections=1, wait_s=0.2)
    try:
        pool = redis.connection_pool
        held = await pool.get_connection()  # type: ignore[no-untyped-call,unused-ignore]
        try:
            async with asyncio.timeout(30):  # a pool that waits forever fails the test here
                with pytest.raises(RedisConnectionError, match="No connection available") as caught:
                    await redis.ping()
            assert not isinstance(caught.value, MaxConnectionsError)  # it waited, then gave up
        finally:
            await pool.release(held)
        assert await redis.ping()  # served again once the connection is back
    finally:
        await redis.aclose()
