"""Server API fixtures: API keys made as the CLI makes them (rest.api_keys.create), two whole apps
(nodes) on this run's Redis, and the outbox relay publishing in the background."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from hub.settings import Settings
from rest import api_keys
from tests.feed.conftest import relay
from tests.hub.conftest import Node, NodeFactory, Pair, make_node, pair

__all__ = ["Node", "Pair", "make_node", "pair"]

KeyFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def make_key(pool: asyncpg.Pool) -> KeyFactory:
    """`await make_key("publish", "presence")`: a new key with those scopes (the key itself)."""

    async def create(*scopes: str, name: str = "test backend") -> str:
        async with pool.acquire() as conn:
            _, key = await api_keys.create(conn, name, list(scopes))
        return key

    return create


@pytest.fixture
async def nodes(make_node: NodeFactory) -> list[Node]:
    """Two nodes sharing this run's Redis."""
    return [await make_node(), await make_node()]


@pytest.fixture
async def relaying(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[None]:
    """The outbox relay running while the test does (to this run's Redis)."""
    await pool.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
    assert settings.redis_url is not None
    async with relay(pool, settings.redis_url, settings):
        yield


def key_headers(key: str, style: str = "bearer") -> dict[str, Any]:
    """The key as `Authorization: Bearer` or as `X-Api-Key`."""
    return {"Authorization": f"Bearer {key}"} if style == "bearer" else {"X-Api-Key": key}
