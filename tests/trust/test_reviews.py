"""Reviews over HTTP against real PostgreSQL: the whole flow from a paid order approved through the
API to both parties' reviews, a reply and an edit; the rating, completedGigs and trust score that
follow in the same transactions; the windows; who may do what; bad input changing nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from domain import trust
from tests.factories import TestUser, make_user
from tests.money.conftest import Parties, act, paid_order
from tests.trust.conftest import completed_order, review


async def user_row(pool: asyncpg.Pool, user: TestUser) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT rating::float8 AS rating, review_count, review_stars, completed_gigs, trust_score, badges"
        " FROM users WHERE id = $1",
        user.id,
    )
    assert row is not None
    return dict(row)


async def expected_trust(pool: asyncpg.Pool, user: TestUser) -> trust.Trust:
    """What the documented rule gives for the user's inputs as they are now."""
    async with pool.acquire() as conn:
        found = await trust.inputs(conn, user.id)
    assert found is not None
    return trust.rule(found)


async def notification_events(api: TestClient[Any, Any], user: TestUser) -> list[dict[str, Any]]:
    r = await api.get("/api/notifications?limit=100", headers=user.headers)
    assert r.status == 200, await r.text()
    return [n["data"] for n in (await r.json())["data"] if n["type"] == "review"]


async def test_the_whole_flow_from_approval_to_reply(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties
) -> None:
    c, d = parties.client, parties.doer
    order_id = await paid_order(api, pool, c, d)
    status, body = await review(api, c, order_id, 5)
    assert (status, body["error"]["details"]["reason"]) == (409, "not_completed"), body
    assert (await act(api, d, order_id, "submit", {"deliverables": [{"url": "https://x.example/a"}]}))[
        0
    ] == 200
    before = await user_row(pool, d)
    status, body = await act(api, c, order_id, "approve")
    assert status == 200, body
    # completedGigs (the doer's) and both parties' trust move in the approval's transaction.
    after = await user_row(pool, d)
    assert after["completed_gigs"] == before["completed_gigs"] + 1
    for user in (c, d):
        want = await expected_trust(pool, user)
        row = await user_row(pool, user)
        assert (row["trust_score"], row["badges"]) == (want.score, want.badges)
        assert "first_gig" in row["badges"]

    status, body = await review(api, c, order_id, 5, "Great logo, on time")
    assert status == 201, body
    client_review = body["data"]
    assert client_review["reviewerRole"] == "client"
    assert (client_review["reviewerId"], client_review["revieweeId"]) == (c.id, d.id)
    assert client_review["orderId"] == order_id and client_review["stars"] == 5
    assert client_review["reply"] is None
    assert client_review["editableUntil"] == client_review["createdAt"] + 24 * 3600 * 1000
    row = await user_row(pool, d)
    assert (row["rating"], row["review_count"], row["review_stars"]) == (5.0, 1, 5)
    want = await expected_trust(pool, d)
    assert row["trust_score"] == want.score
    events = await notification_events(api, d)
    assert {"event": "review_received", "reviewId": client_review["id"]}.items() <= events[0].items()

    status, body = await review(api, d, order_id, 3, "Slow to answer")
    assert status == 201, body
    assert (await user_row(pool, c))["rating"] == 3.0
    status, body = await review(api, c, order_id, 4)
    assert status == 409 and body["error"]["details"] == {
        "reason": "already_reviewed",
        "reviewId": client_review["id"],
    }

    # One reply, by the reviewee only; the author hears of it.
    url = f"/api/reviews/{client_review['id']}/reply"
    r = await api.post(url, json={"text": "Thanks!"}, headers=c.headers)
    assert r.status == 403
    r = await api.post(url, json={"text": "Thanks!"}, headers=parties.stranger.headers)
    assert r.status == 403
    r = await api.post(url, json={"text": "Thanks!"}, headers=d.headers)
    assert r.status == 200, await r.text()
    replied = (await r.json())["data"]
    assert replied["reply"] == "Thanks!" and replied["repliedAt"] is not None
    r = await api.post(url, json={"text": "Again"}, headers=d.headers)
    assert r.status == 409 and (await r.json())["error"]["details"]["reason"] == "already_replied"
    assert any(e["event"] == "review_replied" for e in await notification_events(api, c))

    # The author edits within the window; the reviewee's rating follows.
    url = f"/api/reviews/{client_review['id']}"
    r = await api.patch(url, json={"stars": 2}, headers=d.headers)
    assert r.status == 403
    r = await api.patch(url, json={"stars": 2}, headers=c.headers)
    assert r.status == 200, await r.text()
    edited = (await r.json())["data"]
    assert (edited["stars"], edited["text"], edited["reply"]) == (2, "Great logo, on time", "Thanks!")
    row = await user_row(pool, d)
    assert (row["rating"], row["review_count"], row["review_stars"]) == (2.0, 1, 2)
    assert row["trust_score"] == (await expected_trust(pool, d)).score

    # Reading: the order's reviews (its parties), a user's reviews (any signed-in user), one review.
    r = await api.get(f"/api/orders/{order_id}/reviews", headers=d.headers)
    assert [x["reviewerRole"] for x in (await r.json())["data"]] == ["client", "doer"]
    r = await api.get(f"/api/orders/{order_id}/reviews", headers=parties.stranger.headers)
    assert r.status == 404
    r = await api.get(f"/api/users/{d.id}/reviews", headers=parties.stranger.headers)
    body = await r.json()
    assert r.status == 200 and body["total"] == 1 and body["data"][0]["id"] == client_review["id"]
    r = await api.get(f"/api/users/{d.id}/reviews?role=client", headers=parties.stranger.headers)
    assert (await r.json())["total"] == 0
    r = await api.get(f"/api/reviews/{client_review['id']}", headers=parties.stranger.headers)
    assert (await r.json())["data"]["stars"] == 2


async def test_windows_close(api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties) -> None:
    c, d = parties.client, parties.doer
    late = await completed_order(pool, c, d, days_ago=14.01)
    status, body = await review(api, c, late, 5)
    assert status == 409 and body["error"]["details"]["reason"] == "window_closed", body
    closed_at = body["error"]["details"]["closedAt"]
    assert abs(closed_at - (dt.datetime.now(dt.UTC).timestamp() - 0.01 * 86400) * 1000) < 60_000
    assert await pool.fetchval("SELECT count(*) FROM reviews WHERE order_id = $1", late) == 0

    on_time = await completed_order(pool, c, d, days_ago=13.9)
    status, body = await review(api, c, on_time, 4)
    assert status == 201, body
    review_id = body["data"]["id"]
    await pool.execute("UPDATE reviews SET created_at = now() - interval '25 hours' WHERE id = $1", review_id)
    r = await api.patch(f"/api/reviews/{review_id}", json={"stars": 1}, headers=c.headers)
    body = await r.json()
    assert r.status == 409 and body["error"]["details"]["reason"] == "edit_window_closed", body
    assert (await user_row(pool, d))["review_stars"] == 4


async def test_order_states_that_take_no_review(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties
) -> None:
    from tests.factories import make_order

    c, d = parties.client, parties.doer
    for status, escrow in (("in_progress", "funded"), ("disputed", "funded"), ("cancelled", "refunded")):
        order_id = await make_order(pool, c, d, status=status, escrow_state=escrow)
        code, body = await review(api, d, order_id, 5)
        assert code == 409 and body["error"]["details"] == {"reason": "not_completed", "status": status}


async def test_who_may_review(api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties) -> None:
    c, d = parties.client, parties.doer
    order_id = await completed_order(pool, c, d)
    r = await api.post(f"/api/orders/{order_id}/review", json={"stars": 5})
    assert r.status == 401
    status, _ = await review(api, parties.stranger, order_id, 5)
    assert status == 404
    status, _ = await review(api, parties.admin, order_id, 5)
    assert status == 404
    status, _ = await review(api, c, "00000000-0000-0000-0000-000000000000", 5)
    assert status == 404
    for path in ("/api/users/" + d.id, f"/api/users/{d.id}/reviews", f"/api/orders/{order_id}/reviews"):
        assert (await api.get(path)).status == 401
    assert await pool.fetchval("SELECT count(*) FROM reviews WHERE order_id = $1", order_id) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"stars": 0},
        {"stars": 6},
        {"stars": "5"},
        {"stars": 4.5},
        {"stars": 5, "text": "x" * 2001},
        {"text": "no stars"},
        {"stars": 5, "rating": 5},
        {"stars": 5, "text": "nul \x00"},
    ],
)
async def test_bad_reviews_change_nothing(
    api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties, body: dict[str, Any]
) -> None:
    order_id = await completed_order(pool, parties.client, parties.doer)
    r = await api.post(f"/api/orders/{order_id}/review", json=body, headers=parties.client.headers)
    assert r.status == 400, await r.text()
    assert (await r.json())["error"]["code"] == "bad_request"
    assert await pool.fetchval("SELECT count(*) FROM reviews WHERE order_id = $1", order_id) == 0
    assert (await user_row(pool, parties.doer))["review_count"] == 0


async def test_bad_edits_and_replies(api: TestClient[Any, Any], pool: asyncpg.Pool, parties: Parties) -> None:
    order_id = await completed_order(pool, parties.client, parties.doer)
    _, body = await review(api, parties.client, order_id, 4, "fine")
    review_id = body["data"]["id"]
    for patch in ({}, {"stars": 7}, {"reply": "x"}):
        r = await api.patch(f"/api/reviews/{review_id}", json=patch, headers=parties.client.headers)
        assert r.status == 400, (patch, await r.text())
    for reply in ({}, {"text": "   "}, {"text": "y" * 2001}):
        r = await api.post(f"/api/reviews/{review_id}/reply", json=reply, headers=parties.doer.headers)
        assert r.status == 400, (reply, await r.text())
    r = await api.patch("/api/reviews/not-a-uuid", json={"stars": 3}, headers=parties.client.headers)
    assert r.status == 404
    r = await api.get(f"/api/users/{parties.doer.id}/reviews?role=admin", headers=parties.client.headers)
    assert r.status == 400
    row = await pool.fetchrow("SELECT stars, text, reply FROM reviews WHERE id = $1", review_id)
    assert dict(row) == {"stars": 4, "text": "fine", "reply": None}


async def test_reviews_are_paged(api: TestClient[Any, Any], pool: asyncpg.Pool, money_settings: Any) -> None:
    doer = await make_user(pool, money_settings)
    clients = [await make_user(pool, money_settings) for _ in range(5)]
    for i, c in enumerate(clients):
        order_id = await completed_order(pool, c, doer)
        assert (await review(api, c, order_id, 1 + i))[0] == 201
    seen: list[int] = []
    for page in (1, 2, 3):
        r = await api.get(f"/api/users/{doer.id}/reviews?limit=2&page={page}", headers=doer.headers)
        body = await r.json()
        assert (body["page"], body["limit"], body["total"]) == (page, 2, 5)
        seen += [x["stars"] for x in body["data"]]
    assert seen == [5, 4, 3, 2, 1]  # newest first
