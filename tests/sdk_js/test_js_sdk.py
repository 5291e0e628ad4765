"""The TypeScript SDK (clients/js): its protocol types match the AsyncAPI document the hub serves,
the demo page serves the SDK as built, and the SDK's own tests (Node's test runner, clients/js/test)
pass against a real gigwire of two hub processes and a relay on Redis, including the chaos case,
whose sends this module then finds stored exactly once."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hub.demo import STATIC_DIR
from hub.settings import Settings
from rest.demo_seed import seed_demo
from tests.demo.conftest import node_tools
from tests.factories import random_phone
from tests.sdk_js.conftest import SDK, BuiltSdk, SdkCluster

NODE_TESTS_TIMEOUT_S = 150


async def _run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, within_s: float = 60
) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), within_s)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        raise AssertionError(f"{args} did not finish in {within_s} s:\n{out.decode()[-4000:]}") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_generated_types_match_the_served_asyncapi_document(client: Any, tmp_path: Path) -> None:
    node = node_tools().node
    url = str(client.make_url("/api/asyncapi.json"))
    code, out = await _run(node, "scripts/gen-types.mjs", "--url", url, "--check", cwd=SDK)
    assert code == 0, (
        f"the SDK's protocol types drifted from /api/asyncapi.json (clients/js/scripts/sync.sh):\n{out}"
    )
    resp = await client.get("/api/asyncapi.json")
    document = await resp.json()
    served = tmp_path / "asyncapi.json"
    gen = ("scripts/gen-types.mjs", "--input", str(served), "--check")
    # The checked-in copy the generator reads by default is the served document too.
    copy = json.loads((SDK / "asyncapi.json").read_text())
    for part in ("info", "channels", "operations", "components"):
        assert copy[part] == document[part], (
            f"clients/js/asyncapi.json differs in {part}: clients/js/scripts/sync.sh"
        )
    # The check can fail: a field the hub no longer sends is drift.
    del document["components"]["schemas"]["ChatMessage"]["properties"]["clientMsgId"]
    served.write_text(json.dumps(document))
    code, out = await _run(node, *gen, cwd=SDK)
    assert code == 1 and "out of date" in out, out


def test_demo_serves_the_sdk_as_built(sdk: BuiltSdk) -> None:
    built = (sdk.root / "dist" / "gigwire-client.js").read_bytes()
    assert (STATIC_DIR / "gigwire-client.js").read_bytes() == built, (
        "hub/static/gigwire-client.js is not the current SDK build: clients/js/scripts/sync.sh"
    )


@pytest.mark.slow
async def test_sdk_against_two_hubs(
    sdk: BuiltSdk, sdk_cluster: SdkCluster, pool: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    orders: dict[str, dict[str, str]] = {}
    for name in ("basics", "refresh", "chaos", "conversations"):
        phones = (random_phone(), random_phone())
        seeded = await seed_demo(pool, settings, phones)
        orders[name] = {"id": seeded.order_id, "client": phones[0], "doer": phones[1]}
    result = tmp_path / "chaos.json"
    spec = {
        "hubs": [{"url": h.url, "pid": h.proc.pid, "log": str(h.log)} for h in sdk_cluster.hubs],
        "orders": orders,
        "deps": str(sdk.deps),
        "result": str(result),
    }
    env = {**os.environ, "GIGWIRE_SDK_SPEC": json.dumps(spec)}
    args = (sdk.node, "--test", "--test-concurrency=1", "--test-reporter=spec")
    tests = sorted(str(p.relative_to(sdk.root)) for p in (sdk.root / "test").glob("*.test.mjs"))
    code, out = await _run(*args, *tests, cwd=sdk.root, env=env, within_s=NODE_TESTS_TIMEOUT_S)
    assert code == 0, out[-6000:]
    assert "ℹ fail 0" in out and "ℹ pass 7" in out, out[-3000:]

    # The chaos case's sends, each stored exactly once, each side's in the order it sent them.
    chaos = json.loads(result.read_text())
    rows = await pool.fetch(
        "SELECT seq, text, client_msg_id FROM messages WHERE order_id = $1 ORDER BY seq", chaos["orderId"]
    )
    ids = [r["client_msg_id"] for r in rows]
    assert len(ids) == len(set(ids)), "a message was stored twice"
    assert sorted(ids) == sorted(chaos["clientMsgIds"])
    for side in ("a", "b"):
        assert [r["text"] for r in rows if r["text"].startswith(f"{side}-")] == chaos["sent"][side]
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    # The submit made during the cut is the order's state now.
    status = await pool.fetchval("SELECT status FROM orders WHERE id = $1", chaos["orderId"])
    assert status == "submitted"
