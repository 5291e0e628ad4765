"""The stock JavaScript socket.io-client 4.x (run by Node from .deps/node) against /socket.io/ on one
node, talking to a raw WebSocket client on another node over this run's Redis
(tests/sio/sio_client.mjs)."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.demo.conftest import node_tools, run_node_script
from tests.hub.conftest import NodeFactory
from tests.sio.conftest import Pair, make_node

__all__ = ["make_node"]

SCRIPT_TIMEOUT_S = 120


async def test_stock_socketio_client_across_nodes_and_transports(
    make_node: NodeFactory, pair: Pair, pool: asyncpg.Pool
) -> None:
    tools = node_tools("socket.io-client", "ws")
    node_a = await make_node()
    node_b = await make_node()
    spec: dict[str, Any] = {
        "a": str(node_a.client.make_url("")).rstrip("/"),
        "b": str(node_b.client.make_url("")).rstrip("/"),
        "orderId": pair.order_id,
        "client": {"id": pair.client.id, "token": pair.client.token},
        "doer": {"id": pair.doer.id, "token": pair.doer.token},
        "deps": str(tools.deps),
    }
    result = await run_node_script(tools, "tests/sio/sio_client.mjs", spec, SCRIPT_TIMEOUT_S)
    assert len(result["steps"]) == 8, result["steps"]
    rows = await pool.fetch("SELECT seq, text FROM messages WHERE order_id = $1 ORDER BY seq", pair.order_id)
    assert [(r["seq"], r["text"]) for r in rows] == [(1, "from ws"), (2, "from sio")]
