"""Node beacons: every web process writes what it holds (connections, users, chat messages received)
to the shared Store every few seconds, so that any process can answer for the whole deployment
(GET /api/server/stats). A process that stops writing drops out after NODE_TTL_S.

Layout: the set `nodes` whose members are node ids (each live for NODE_TTL_S), and one value per
node, `node:<id>`, a JSON object (NodeStats)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Final

import msgspec
from aiohttp import web

from hub.clock import now_ms
from hub.keys import HUB, STORE
from hub.loops import sleep_or_stop, supervise
from hub.metrics import METRICS
from hub.model import EpochMs, Wire
from hub.store import Store

log = logging.getLogger("gigwire.nodes")

NODES_KEY: Final = "nodes"
NODE_TTL_S: Final = 15.0
INTERVAL_S: Final = 5.0
WITHDRAW_TIMEOUT_S: Final = 1.0


class NodeStats(Wire):
    """One web process as its last beacon described it."""

    node_id: str
    connections: int = msgspec.field(default=0)
    users: int = 0
    chat_messages_in: int = 0
    started_at: EpochMs = 0
    seen_at: EpochMs = 0


NODE_ID: web.AppKey[str] = web.AppKey("node_id", str)
"""This process's node id (random per start)."""


def _chat_in(app: web.Application) -> int:
    """CHAT_MESSAGE frames received by this process, both transports (its Prometheus counter)."""
    total = 0.0
    for metric in app[METRICS].frames_in.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("type") == "CHAT_MESSAGE":
                total += sample.value
    return int(total)


def snapshot(app: web.Application, started: int) -> NodeStats:
    """This process now."""
    hub = app[HUB]
    return NodeStats(
        node_id=app[NODE_ID],
        connections=len(hub.sessions),
        users=len(hub.users),
        chat_messages_in=_chat_in(app),
        started_at=started,
        seen_at=now_ms(),
    )


async def write(store: Store, stats: NodeStats) -> None:
    """Publish one beacon."""
    await store.set(f"node:{stats.node_id}", msgspec.json.encode(stats), NODE_TTL_S)
    await store.members_touch({NODES_KEY: [stats.node_id]}, NODE_TTL_S)


async def read_all(store: Store) -> list[NodeStats]:
    """Every live node's last beacon, by node id."""
    out: list[NodeStats] = []
    for node_id in sorted(await store.members(NODES_KEY)):
        raw = await store.get(f"node:{node_id}")
        if raw is None:
            continue
        try:
            out.append(msgspec.json.decode(raw, type=NodeStats))
        except msgspec.DecodeError:
            continue
    return out


def setup_nodes(app: web.Application) -> None:
    """Write this process's beacon every INTERVAL_S while it runs (after setup_realtime); withdraw
    it on stop."""
    app[NODE_ID] = secrets.token_hex(8)
    started = now_ms()

    async def beacon(app: web.Application) -> AsyncIterator[None]:
        store = app[STORE]
        stopping = asyncio.Event()

        async def step() -> None:
            await write(store, snapshot(app, started))
            await sleep_or_stop(stopping, INTERVAL_S)

        task = asyncio.get_running_loop().create_task(
            supervise("nodes", step, logger=log, message="node beacon failed", stopping=stopping),
            name="gigwire-node-beacon",
        )
        yield
        # Stopped between writes, not cancelled inside one: a Store command cancelled mid-way (its
        # first one detects the Redis kind) could leave others waiting on it at the app's cleanup.
        stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), WITHDRAW_TIMEOUT_S * 3)
        except TimeoutError:
            task.cancel()
        try:
            # Bounded: a stop must not wait on a Store that is down or out of connections.
            async with asyncio.timeout(WITHDRAW_TIMEOUT_S):
                await store.members_remove(NODES_KEY, [app[NODE_ID]])
                await store.delete(f"node:{app[NODE_ID]}")
        except Exception as exc:  # advisory: the entry expires by itself
            log.warning("node beacon withdrawal failed", extra={"error": repr(exc)})

    app.cleanup_ctx.append(beacon)
