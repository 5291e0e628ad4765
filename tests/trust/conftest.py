"""Fixtures of the trust tests (reviews, trust score, public profiles, saved gigs): the money tests'
app against the fake Razorpay and their parties, the notice tests' app with workers and live /ws
sessions, and helpers for completed orders and reviews."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from tests.factories import TestUser, make_order
from tests.money.conftest import api, money_settings, parties, razorpay  # noqa: F401 (fixtures)
from tests.notices.conftest import app_client, fcm, live, party  # noqa: F401 (fixtures)

__all__ = ["completed_order", "review"]


async def completed_order(pool: asyncpg.Pool, client: TestUser, doer: TestUser, days_ago: float = 0) -> str:
    """An order between them, completed `days_ago` days ago, arranged by SQL (no money moves: for
    tests of reviews, which only read the order's status and completion time)."""
    order_id = await make_order(pool, client, doer, status="completed", escrow_state="released")
    await pool.execute(
        "UPDATE orders SET completed_at = now() - make_interval(secs => $2) WHERE id = $1",
        order_id,
        days_ago * 86400,
    )
    return order_id


async def review(
    http: TestClient[Any, Any], user: TestUser, order_id: str, stars: int, text: str = ""
) -> tuple[int, dict[str, Any]]:
    """POST /api/orders/{id}/review as `user` through `http`; (status, json)."""
    r = await http.post(
        f"/api/orders/{order_id}/review", json={"stars": stars, "text": text}, headers=user.headers
    )
    return r.status, await r.json()
