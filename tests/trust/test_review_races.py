"""Reviews under concurrency, against real PostgreSQL over HTTP: one party's racing reviews make one
review; many reviews and edits of one user at once leave an exact rating; a review racing the
order's approval, dispute or resolution sees the order wholly before or wholly after the move; two
orders between the same two people in opposite roles approved at once do not deadlock."""

from __future__ import annotations

import asyncio
import random
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from domain import trust
from tests.factories import make_user
from tests.money.conftest import Parties, act, paid_order
from tests.trust.conftest import completed_order, review

TOTALS = (
    "SELECT rating::float8 AS rating, review_count, review_stars, trust_score, badges"
    " FROM users WHERE id = $1"
)
DELIVERABLE = {"deliverables": [{"url": "https://files.example/work"}]}


async def test_racing_reviews_of_one_party_make_one(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties
) -> None:
    for _ in range(3):
        order_id = await completed_order(pool, parties.client, parties.doer)
        results = await asyncio.gather(
            *(review(api, parties.client, order_id, s) for s in (1, 2, 3, 4, 5, 5))
        )
        statuses = sorted(status for status, _ in results)
        assert statuses == [201, 409, 409, 409, 409, 409], results
        won = next(body["data"] for status, body in results if status == 201)
        for status, body in results:
            if status == 409:
                assert body["error"]["details"] == {"reason": "already_reviewed", "reviewId": won["id"]}
        assert await pool.fetchval("SELECT count(*) FROM reviews WHERE order_id = $1", order_id) == 1
    row = await pool.fetchrow("SELECT review_count, review_stars FROM users WHERE id = $1", parties.doer.id)
    kept = await pool.fetchval("SELECT sum(stars) FROM reviews WHERE reviewee_id = $1", parties.doer.id)
    assert (row["review_count"], row["review_stars"]) == (3, kept)


def exact(stars: list[int]) -> float:
    """PostgreSQL's round(sum / count, 2): half away from zero."""
    mean = Decimal(sum(stars)) / Decimal(len(stars))
    return float(mean.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


async def test_rating_is_exact_after_concurrent_reviews_and_edits(
    api: TestClient[Any, Any], pool: asyncpg.Pool, money_settings: Any
) -> None:
    rng = random.Random(15)
    doer = await make_user(pool, money_settings)
    clients = [await make_user(pool, money_settings) for _ in range(14)]
    orders = [await completed_order(pool, c, doer) for c in clients]
    stars = [rng.randint(1, 5) for _ in clients]
    results = await asyncio.gather(
        *(review(api, c, o, s) for c, o, s in zip(clients, orders, stars, strict=True))
    )
    assert [status for status, _ in results] == [201] * len(clients), results
    row = await pool.fetchrow(TOTALS, doer.id)
    assert (row["rating"], row["review_count"], row["review_stars"]) == (exact(stars), len(stars), sum(stars))

    # Half of them change their stars at once.
    edits = {i: rng.randint(1, 5) for i in range(0, len(clients), 2)}
    replies = await asyncio.gather(
        *(
            api.patch(
                f"/api/reviews/{results[i][1]['data']['id']}", json={"stars": s}, headers=clients[i].headers
            )
            for i, s in edits.items()
        )
    )
    assert [r.status for r in replies] == [200] * len(edits)
    for i, s in edits.items():
        stars[i] = s
    row = await pool.fetchrow(TOTALS, doer.id)
    assert (row["rating"], row["review_count"], row["review_stars"]) == (exact(stars), len(stars), sum(stars))
    # The last recomputation saw every review: the stored score is the rule's for the final inputs.
    async with pool.acquire() as conn:
        found = await trust.inputs(conn, doer.id)
    assert found is not None
    want = trust.rule(found)
    assert (row["trust_score"], row["badges"]) == (want.score, want.badges)


async def test_review_racing_approval(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties
) -> None:
    """The review either comes after the approval (201) or before it (409 not_completed), never a
    review of an order that is not completed and never a server error."""
    c, d = parties.client, parties.doer
    outcomes = set()
    for _ in range(4):
        order_id = await paid_order(api, pool, c, d)
        assert (await act(api, d, order_id, "submit", DELIVERABLE))[0] == 200
        approved, by_doer, by_client = await asyncio.gather(
            act(api, c, order_id, "approve"), review(api, d, order_id, 4), review(api, c, order_id, 5)
        )
        assert approved[0] == 200, approved
        for status, body in (by_doer, by_client):
            assert status in (201, 409), body
            if status == 409:
                assert body["error"]["details"] == {"reason": "not_completed", "status": "submitted"}
            outcomes.add(status)
        count = await pool.fetchval("SELECT count(*) FROM reviews WHERE order_id = $1", order_id)
        assert count == [by_doer[0], by_client[0]].count(201)
    rating = await pool.fetchval("SELECT rating::float8 FROM users WHERE id = $1", d.id)
    stars = await pool.fetch("SELECT stars FROM reviews WHERE reviewee_id = $1", d.id)
    assert rating == (exact([r["stars"] for r in stars]) if stars else 0.0)


async def test_review_racing_a_dispute_and_its_resolution(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties
) -> None:
    c, d, admin = parties.client, parties.doer, parties.admin
    order_id = await paid_order(api, pool, c, d)
    assert (await act(api, d, order_id, "submit", DELIVERABLE))[0] == 200
    disputed, reviewed = await asyncio.gather(
        act(api, c, order_id, "dispute", {"reason": "not what I asked"}), review(api, d, order_id, 1)
    )
    assert disputed[0] == 200, disputed
    assert reviewed[0] == 409 and reviewed[1]["error"]["details"]["reason"] == "not_completed"
    assert await pool.fetchval("SELECT count(*) FROM reviews WHERE order_id = $1", order_id) == 0

    before = await pool.fetchval("SELECT trust_score FROM users WHERE id = $1", c.id)
    resolved, reviewed = await asyncio.gather(
        act(api, admin, order_id, "resolve", {"outcome": "release"}), review(api, d, order_id, 2)
    )
    assert resolved[0] == 200, resolved
    assert reviewed[0] in (201, 409), reviewed
    if reviewed[0] == 409:  # the review came first: after the resolution it is taken
        assert (await review(api, d, order_id, 2))[0] == 201
    # The client lost the dispute (released to the doer): its trust input and score follow at once.
    async with pool.acquire() as conn:
        found = await trust.inputs(conn, c.id)
    assert found is not None and found.disputes_lost == 1
    row = await pool.fetchrow("SELECT trust_score, badges FROM users WHERE id = $1", c.id)
    assert row["trust_score"] == trust.rule(found).score
    assert row["trust_score"] < before + trust.PER_COMPLETED * 1 + 1  # the loss outweighs the completion
    # A completed order cannot be disputed again: the review stands.
    status, body = await act(api, c, order_id, "dispute", {"reason": "again"})
    assert status == 409, body
    assert await pool.fetchval("SELECT count(*) FROM reviews WHERE order_id = $1", order_id) == 1


async def test_refund_resolution_counts_against_the_doer(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties
) -> None:
    c, d = parties.client, parties.doer
    order_id = await paid_order(api, pool, c, d)
    assert (await act(api, d, order_id, "dispute", {"reason": "client vanished"}))[0] == 200
    status, body = await act(api, parties.admin, order_id, "resolve", {"outcome": "refund"})
    assert status == 200, body
    async with pool.acquire() as conn:
        doer_inputs, client_inputs = await trust.inputs(conn, d.id), await trust.inputs(conn, c.id)
    assert doer_inputs is not None and client_inputs is not None
    assert (doer_inputs.disputes_lost, client_inputs.disputes_lost) == (1, 0)
    assert (
        await pool.fetchval("SELECT trust_score FROM users WHERE id = $1", d.id)
        == trust.rule(doer_inputs).score
    )
    status, body = await review(api, c, order_id, 1)  # a cancelled order takes no review
    assert status == 409 and body["error"]["details"]["status"] == "cancelled"


async def test_opposite_orders_approved_at_once_do_not_deadlock(
    api: TestClient[Any, Any], pool: asyncpg.Pool, money_settings: Any
) -> None:
    """Approval locks both parties' rows in id order before the ledger touches the doer's: without
    that, A's approval (doer B) and B's approval (doer A) each hold one row and wait for the other."""
    a = await make_user(pool, money_settings)
    b = await make_user(pool, money_settings)
    for _ in range(4):
        x = await paid_order(api, pool, a, b)
        y = await paid_order(api, pool, b, a)
        assert (await act(api, b, x, "submit", DELIVERABLE))[0] == 200
        assert (await act(api, a, y, "submit", DELIVERABLE))[0] == 200
        results = await asyncio.gather(act(api, a, x, "approve"), act(api, b, y, "approve"))
        assert [status for status, _ in results] == [200, 200], results
    for user in (a, b):
        row = await pool.fetchrow("SELECT completed_gigs, trust_score FROM users WHERE id = $1", user.id)
        async with pool.acquire() as conn:
            found = await trust.inputs(conn, user.id)
        assert found is not None and found.completed_orders == 8
        assert (row["completed_gigs"], row["trust_score"]) == (4, trust.rule(found).score)


async def test_auto_approval_by_the_timers_recomputes_trust_and_opens_reviews(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties
) -> None:
    """The order timers' auto-approval goes through the same transition: the doer's completedGigs and
    both parties' trust move with it, and the order then takes reviews."""
    from workers.metrics import WorkerMetrics
    from workers.timers import Timers

    c, d = parties.client, parties.doer
    order_id = await paid_order(api, pool, c, d)
    assert (await act(api, d, order_id, "submit", DELIVERABLE))[0] == 200
    await pool.execute("UPDATE orders SET submitted_at = now() - interval '8 days' WHERE id = $1", order_id)
    before = await pool.fetchval("SELECT completed_gigs FROM users WHERE id = $1", d.id)
    moved = await Timers(pool, WorkerMetrics(), auto_approve_s=7 * 86400.0, unpaid_expire_s=86400.0).sweep()
    assert moved["approve"] >= 1
    assert await pool.fetchval("SELECT status FROM orders WHERE id = $1", order_id) == "completed"
    assert await pool.fetchval("SELECT completed_gigs FROM users WHERE id = $1", d.id) == before + 1
    for user in (c, d):
        async with pool.acquire() as conn:
            found = await trust.inputs(conn, user.id)
        assert found is not None and found.completed_orders >= 1
        row = await pool.fetchrow("SELECT trust_score, badges FROM users WHERE id = $1", user.id)
        want = trust.rule(found)
        assert (row["trust_score"], row["badges"]) == (want.score, want.badges)
    assert (await review(api, d, order_id, 5))[0] == 201


async def test_both_parties_at_once_and_racing_edits_of_one_review(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties
) -> None:
    c, d = parties.client, parties.doer
    order_id = await completed_order(pool, c, d)
    (s1, b1), (s2, _) = await asyncio.gather(review(api, c, order_id, 3), review(api, d, order_id, 4))
    assert (s1, s2) == (201, 201)
    review_id = b1["data"]["id"]
    replies = await asyncio.gather(
        *(
            api.patch(f"/api/reviews/{review_id}", json={"stars": s}, headers=c.headers)
            for s in (1, 5, 2, 4, 5, 1)
        )
    )
    assert [r.status for r in replies] == [200] * 6
    final = await pool.fetchval("SELECT stars FROM reviews WHERE id = $1", review_id)
    row = await pool.fetchrow(TOTALS, d.id)
    # Each edit moved the totals by its own delta from the stars it found locked: they end at the last.
    assert (row["review_count"], row["review_stars"], row["rating"]) == (1, final, float(final))


async def test_refund_resolution_and_opposite_approval_at_once_do_not_deadlock(
    api: TestClient[Any, Any], pool: asyncpg.Pool, money_settings: Any
) -> None:
    a = await make_user(pool, money_settings)
    b = await make_user(pool, money_settings)
    admin = await make_user(pool, money_settings, roles=("doer", "client", "admin"))
    for _ in range(5):
        x = await paid_order(api, pool, a, b)
        y = await paid_order(api, pool, b, a)
        assert (await act(api, b, x, "dispute", {"reason": "stuck"}))[0] == 200
        assert (await act(api, a, y, "submit", DELIVERABLE))[0] == 200
        results = await asyncio.gather(
            act(api, admin, x, "resolve", {"outcome": "refund"}), act(api, b, y, "approve")
        )
        assert [status for status, _ in results] == [200, 200], results
    async with pool.acquire() as conn:
        found = await trust.inputs(conn, b.id)
    assert found is not None and (found.disputes_lost, found.completed_orders) == (5, 5)
    assert await pool.fetchval("SELECT trust_score FROM users WHERE id = $1", b.id) == trust.rule(found).score
