"""Order timers: submitted orders auto-approve, unpaid orders expire; durable, idempotent, side by side."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from domain.orders import transition
from tests.factories import TestUser as User
from tests.factories import open_test_order
from workers.metrics import WorkerMetrics
from workers.timers import Timers

DAY = 86400.0


async def submitted_order(pool: asyncpg.Pool, client: User, doer: User, days_ago: float) -> str:
    order_id = await open_test_order(pool, client, doer)
    async with pool.acquire() as conn, conn.transaction():
        await transition(conn, order_id, "fund", None, payment_id=f"pay_{order_id[:8]}")
        await transition(
            conn, order_id, "submit", doer.id, deliverables=[{"url": "https://example.com/a.png"}]
        )
        await conn.execute(
            "UPDATE orders SET submitted_at = now() - make_interval(secs => $2) WHERE id = $1",
            order_id,
            days_ago * DAY,
        )
    return order_id


async def test_due_orders_move_and_others_stay(pool: asyncpg.Pool, user_factory: Any) -> None:
    client, doer = await user_factory(), await user_factory()
    due = await submitted_order(pool, client, doer, days_ago=8)
    fresh = await submitted_order(pool, client, doer, days_ago=6)
    unpaid_old = await open_test_order(pool, client, doer)
    unpaid_new = await open_test_order(pool, client, doer)
    await pool.execute("UPDATE orders SET created_at = now() - interval '25 hours' WHERE id = $1", unpaid_old)
    metrics = WorkerMetrics()
    timers = Timers(pool, metrics, auto_approve_s=7 * DAY, unpaid_expire_s=24 * 3600)
    moved = await timers.sweep()
    assert moved["approve"] >= 1 and moved["expire"] >= 1
    status = {
        r["id"]: (r["status"], r["escrow_state"])
        for r in await pool.fetch(
            "SELECT id::text, status, escrow_state FROM orders WHERE id = ANY($1::uuid[])",
            [due, fresh, unpaid_old, unpaid_new],
        )
    }
    assert status[due] == ("completed", "released")
    assert status[fresh] == ("submitted", "funded")
    assert status[unpaid_old] == ("cancelled", "awaiting_payment")
    assert status[unpaid_new] == ("pending_payment", "awaiting_payment")
    # The system is the actor, and the parties hear about it through the outbox.
    event = await pool.fetchrow(
        "SELECT actor_id, action FROM order_events WHERE order_id = $1 ORDER BY created_at DESC LIMIT 1", due
    )
    assert event is not None and event["actor_id"] is None and event["action"] == "approve"
    payload = await pool.fetchval(
        "SELECT payload FROM outbox WHERE event_type = 'ORDER_UPDATE' AND payload->>'orderId' = $1"
        " ORDER BY id DESC LIMIT 1",
        due,
    )
    assert payload["status"] == "completed" and payload["actorId"] is None
    # A second sweep moves these orders no further.
    await timers.sweep()
    approvals = await pool.fetchval(
        "SELECT count(*) FROM order_events WHERE order_id = $1 AND action = 'approve'", due
    )
    assert approvals == 1


async def test_sweeps_side_by_side_move_each_order_once(pool: asyncpg.Pool, user_factory: Any) -> None:
    client, doer = await user_factory(), await user_factory()
    orders = [await submitted_order(pool, client, doer, days_ago=10) for _ in range(6)]
    sweeps = [Timers(pool, WorkerMetrics(), auto_approve_s=7 * DAY, unpaid_expire_s=DAY) for _ in range(3)]
    await asyncio.gather(*(t.sweep() for t in sweeps))
    approvals = await pool.fetchval(
        "SELECT count(*) FROM order_events WHERE order_id = ANY($1::uuid[]) AND action = 'approve'", orders
    )
    assert approvals == 6
    assert {
        r["status"] for r in await pool.fetch("SELECT status FROM orders WHERE id = ANY($1::uuid[])", orders)
    } == {"completed"}
    wallet = await pool.fetchval("SELECT wallet_balance FROM users WHERE id = $1", doer.id)
    assert wallet == 6 * 90_000  # released once each: amount 100,000 less the 10% fee


async def test_a_failing_order_does_not_stop_the_sweep(
    pool: asyncpg.Pool, user_factory: Any, monkeypatch: Any
) -> None:
    import domain.orders

    client, doer = await user_factory(), await user_factory()
    broken = await submitted_order(pool, client, doer, days_ago=9)
    good = await submitted_order(pool, client, doer, days_ago=9)
    real = domain.orders.transition

    async def failing(conn: Any, order_id: str, action: str, actor_id: str | None, **args: Any) -> Any:
        if order_id == broken:
            raise RuntimeError("this order cannot move")
        return await real(conn, order_id, action, actor_id, **args)

    monkeypatch.setattr(domain.orders, "transition", failing)
    metrics = WorkerMetrics()
    moved = await Timers(pool, metrics, auto_approve_s=7 * DAY, unpaid_expire_s=DAY).sweep()
    assert await pool.fetchval("SELECT status FROM orders WHERE id = $1", good) == "completed"
    assert await pool.fetchval("SELECT status FROM orders WHERE id = $1", broken) == "submitted"
    assert moved["approve"] >= 1
    assert metrics.registry.get_sample_value("gigwire_worker_errors_total", {"loop": "timers"}) == 1
