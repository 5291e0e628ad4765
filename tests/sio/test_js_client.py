"""The stock JavaScript socket.io-client 4.x (run by Node from .deps/node) against /socket.io/ on one
node, talking to a raw WebSocket client on another node over this run's Redis
(tests/sio/sio_client.mjs)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from tests.demo.conftest import node_tools
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
    proc = await asyncio.create_subprocess_exec(
        tools.node,
        "tests/sio/sio_client.mjs",
        json.dumps(spec),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), SCRIPT_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"the Node client did not finish in {SCRIPT_TIMEOUT_S} s") from None
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    assert lines, f"no result from the Node client (exit {proc.returncode}): {err.decode()[-2000:]}"
    result = json.loads(lines[-1])
    assert result["ok"], f"{result}\n{err.decode()[-2000:]}"
    assert len(result["steps"]) == 8, result["steps"]
    assert proc.returncode == 0
    rows = await pool.fetch("SELECT seq, text FROM messages WHERE order_id = $1 ORDER BY seq", pair.order_id)
    assert [(r["seq"], r["text"]) for r in rows] == [(1, "from ws"), (2, "from sio")]
