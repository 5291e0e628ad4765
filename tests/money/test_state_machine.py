"""Every (state, action, actor) of the order state machine, against a table written out here (not the
code's own table): the legal moves land where they should with the right escrow; every other pair
gets its error (404 stranger, 403 role that never may, 409 wrong state with the state in details)
and changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from domain import ledger
from domain.errors import DomainError
from domain.gateway_sandbox import SandboxGateway
from domain.orders import Order, transition
from hub.settings import Settings
from tests.money.conftest import Parties, new_order

# (status, action) -> (roles that may, status after, escrow after). Everything else is illegal.
LEGAL: dict[tuple[str, str], tuple[set[str], str, str]] = {
    ("pending_payment", "fund"): ({"client", "system"}, "in_progress", "funded"),
    ("pending_payment", "cancel"): ({"client", "doer"}, "cancelled", "awaiting_payment"),
    ("pending_payment", "expire"): ({"system"}, "cancelled", "awaiting_payment"),
    ("in_progress", "submit"): ({"doer"}, "submitted", "funded"),
    ("in_progress", "cancel"): ({"client", "doer"}, "cancelled", "refunded"),
    ("in_progress", "dispute"): ({"client", "doer"}, "disputed", "funded"),
    ("submitted", "approve"): ({"client", "system"}, "completed", "released"),
    ("submitted", "request_revision"): ({"client"}, "in_progress", "funded"),
    ("submitted", "dispute"): ({"client", "doer"}, "disputed", "funded"),
    ("disputed", "resolve_release"): ({"admin"}, "completed", "released"),
    ("disputed", "resolve_refund"): ({"admin"}, "cancelled", "refunded"),
    ("disputed", "resolve_split"): ({"admin"}, "completed", "released"),
}
ACTIONS = sorted({a for _, a in LEGAL})
EVER = {a: set().union(*(r for (_, x), (r, _, _) in LEGAL.items() if x == a)) for a in ACTIONS}
ACTORS = ("client", "doer", "admin", "stranger", "system")

# How to reach each state from a fresh order (the cancelled-after-funding path is its own state).
PATHS: dict[str, list[tuple[str, str]]] = {
    "pending_payment": [],
    "in_progress": [("fund", "system")],
    "submitted": [("fund", "system"), ("submit", "doer")],
    "disputed": [("fund", "system"), ("dispute", "doer")],
    "completed": [("fund", "system"), ("submit", "doer"), ("approve", "client")],
    "cancelled": [("cancel", "client")],
    "refunded": [("fund", "system"), ("cancel", "doer")],
}


def _args(action: str, gateway: SandboxGateway, n: int) -> dict[str, Any]:
    base: dict[str, Any] = {"gateway": gateway}
    if action == "fund":
        base["payment_id"] = f"pay_{uuid.uuid4().hex}"
    elif action == "submit":
        base["deliverables"] = [{"url": "https://files.example/x"}]
    elif action in ("request_revision", "dispute"):
        base["reason"] = "because"
    elif action.startswith("resolve_"):
        base["outcome"] = action.removeprefix("resolve_")
        if action == "resolve_split":
            base["doer_amount"] = 1
    return base


async def _do(
    conn: asyncpg.Connection,
    order_id: str,
    action: str,
    actor: str,
    p: Parties,
    gateway: SandboxGateway,
    n: int,
) -> Order:
    ids = {"client": p.client.id, "doer": p.doer.id, "admin": p.admin.id, "stranger": p.stranger.id}
    public = "resolve" if action.startswith("resolve_") else action
    async with conn.transaction():
        return await transition(
            conn, order_id, public, ids.get(actor), is_admin=actor == "admin", **_args(action, gateway, n)
        )


@pytest.mark.parametrize("state", list(PATHS))
async def test_every_action_and_actor_from(
    state: str, pool: asyncpg.Pool, parties: Parties, money_settings: Settings
) -> None:
    gateway = SandboxGateway(money_settings.with_(payment_gateway="sandbox"))
    status_of = {"refunded": "cancelled"}.get(state, state)
    checked = 0
    async with pool.acquire() as conn:
        for action in ACTIONS:
            for actor in ACTORS:
                order_id = await new_order(pool, parties.client, parties.doer, 50_000)
                for n, (step, by) in enumerate(PATHS[state]):
                    await _do(conn, order_id, step, by, parties, gateway, n)
                before = await conn.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
                events_before = await conn.fetchval(
                    "SELECT count(*) FROM order_events WHERE order_id = $1", order_id
                )
                assert before["status"] == status_of
                legal = LEGAL.get((status_of, action))
                try:
                    after = await _do(conn, order_id, action, actor, parties, gateway, 99)
                except DomainError as exc:
                    after = None
                    error = exc
                if actor == "stranger":
                    expected = "not_found"
                elif actor not in EVER[action]:
                    expected = "forbidden"
                elif legal is not None and actor in legal[0]:
                    expected = "ok"
                else:
                    expected = "conflict"
                where = f"{state} {action} by {actor}"
                if expected == "ok":
                    assert after is not None, f"{where}: {error.code} {error.message}"
                    assert legal is not None
                    assert (after.status, after.escrow_state) == (legal[1], legal[2]), where
                    held = await ledger.balance(conn, ledger.escrow_account(order_id))
                    assert held == (50_000 if legal[2] == "funded" else 0), where
                else:
                    assert after is None, f"{where}: expected {expected}, got success"
                    assert error.code == expected, f"{where}: {error.code} {error.message}"
                    if expected == "conflict":
                        assert error.details == {"status": status_of, "escrowState": before["escrow_state"]}
                    assert await conn.fetchrow("SELECT * FROM orders WHERE id = $1", order_id) == before, (
                        where
                    )
                    count = await conn.fetchval(
                        "SELECT count(*) FROM order_events WHERE order_id = $1", order_id
                    )
                    assert count == events_before, where
                checked += 1
    assert checked == len(ACTIONS) * len(ACTORS)


async def test_the_table_here_matches_the_codes_table() -> None:
    from domain.order_states import TABLE

    code = {k: (set(m.roles), m.status) for k, m in TABLE.items()}
    assert code == {k: (roles, status) for k, (roles, status, _) in LEGAL.items()}
