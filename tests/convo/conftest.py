"""Fixtures of the conversation tests: a gig's owner, an applicant and a stranger, the applicant's
pending application made through REST (its id is the pre-order thread's chat id), and the hub
tests' nodes and clients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from hub.settings import Settings
from tests.factories import TestUser, make_user
from tests.hub.conftest import Conn, Node, NodeFactory, make_node, node
from tests.market.conftest import apply, create_gig

__all__ = ["Conn", "Node", "NodeFactory", "Thread", "api", "make_node", "node", "thread"]


@dataclass
class Thread:
    """A pending application: `owner` owns the gig, `doer` applied; `app_id` names the thread."""

    owner: TestUser
    doer: TestUser
    stranger: TestUser
    gig_id: str
    app_id: str


async def api(node: Node, method: str, path: str, user: TestUser | None = None, **kw: Any) -> tuple[int, Any]:
    """One REST call on `node` as `user`: (status, JSON body)."""
    headers = user.headers if user is not None else {}
    resp = await node.client.request(method, path, headers=headers, **kw)
    return resp.status, await resp.json()


async def new_thread(node: Node, pool: asyncpg.Pool, settings: Settings) -> Thread:
    owner = await make_user(pool, settings, name="Gig Owner", avatar_url="https://cdn.example/o.png")
    doer = await make_user(pool, settings, name="Applicant")
    stranger = await make_user(pool, settings, name="Stranger")
    gig = await create_gig(node.client, owner)
    application = await apply(node.client, doer, gig["id"])
    return Thread(owner, doer, stranger, gig["id"], application["id"])


@pytest.fixture
async def thread(node: Node, pool: asyncpg.Pool, settings: Settings) -> Thread:
    return await new_thread(node, pool, settings)
