"""The /demo page end to end in headless Chromium: the two parties of one order log in with their
phone and OTP, open the order's chat, and talk. Real app, PostgreSQL and Redis; the browser drives
the page through playwright-core (tests/demo/browser_e2e.mjs)."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestServer

from hub.settings import Settings
from rest.demo_seed import seed_demo
from tests.demo.conftest import ARTIFACTS, RecordingOtpSender, chromium_path, node_tools, run_node_script
from tests.factories import random_phone

SCRIPT_TIMEOUT_S = 180


async def test_two_tabs_chat_through_the_demo_page(
    demo_server: tuple[TestServer, RecordingOtpSender], pool: asyncpg.Pool, settings: Settings
) -> None:
    tools = node_tools("playwright-core")
    chromium_path()
    server, sender = demo_server
    # The order the demo seed makes (funded, through the ledger), for two fresh phones.
    phones = (random_phone(), random_phone())
    seeded = await seed_demo(pool, settings, phones)
    order_id = seeded.order_id
    ARTIFACTS.mkdir(exist_ok=True)
    spec: dict[str, Any] = {
        "base": str(server.make_url("")).rstrip("/"),
        "orderId": order_id,
        "client": {"phone": phones[0]},
        "doer": {"phone": phones[1]},
        "artifacts": str(ARTIFACTS),
        "deps": str(tools.deps),
    }
    result = await run_node_script(tools, "tests/demo/browser_e2e.mjs", spec, SCRIPT_TIMEOUT_S)
    assert result["steps"][-2:] == ["doer reconnected and caught up, once", "screenshots saved"], result
    # Both logged in through the page: each phone was sent exactly the code it typed.
    assert set(sender.codes) == set(phones)
    # What the page sent was stored: the client's message and the doer's reply, in order.
    rows = await pool.fetch(
        "SELECT sender_id::text, text FROM messages WHERE order_id = $1 ORDER BY seq", order_id
    )
    assert [r["sender_id"] for r in rows] == [seeded.client_id, seeded.doer_id, seeded.client_id]
    assert rows[0]["text"].startswith("Hello from the client")
    assert (ARTIFACTS / "demo-client.png").stat().st_size > 0
    assert (ARTIFACTS / "demo-doer.png").stat().st_size > 0
