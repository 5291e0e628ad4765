"""Applications: apply (with the NEW_APPLICATION event), list, withdraw, reject, accept (the order
opened in the same transaction), and concurrent accepts of one gig making exactly one order."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from hub.settings import Settings
from tests.factories import TestUser, make_user
from tests.market.conftest import apply, create_gig, gig_row


async def test_apply_counts_and_tells_the_owner(
    client: Any, pool: asyncpg.Pool, owner: TestUser, doer: TestUser
) -> None:
    gig = await create_gig(client, owner)
    application = await apply(client, doer, gig["id"], bid=90_000)
    assert application["gigId"] == gig["id"] and application["doerId"] == doer.id
    assert (application["status"], application["bidAmount"], application["currency"]) == (
        "pending",
        90_000,
        "INR",
    )
    assert (await gig_row(pool, gig["id"]) or {})["applications_count"] == 1
    event = await pool.fetchrow(
        "SELECT channels, payload FROM outbox WHERE event_type = 'NEW_APPLICATION'"
        " AND payload->>'applicationId' = $1",
        application["id"],
    )
    assert event is not None
    assert event["channels"] == [f"user:{owner.id}"]
    assert event["payload"] == {
        "gigId": gig["id"], "applicationId": application["id"], "doerId": doer.id, "bidAmount": 90_000,
    }  # fmt: skip


async def test_apply_refusals_change_nothing(
    client: Any, pool: asyncpg.Pool, settings: Settings, owner: TestUser, doer: TestUser
) -> None:
    gig = await create_gig(client, owner)
    url = f"/api/gigs/{gig['id']}/applications"
    good = {"proposal": "I can", "bidAmount": 1000}
    client_only = await make_user(pool, settings, roles=("client",))
    cases: list[tuple[dict[str, Any] | None, dict[str, str], int]] = [
        (good, {}, 401),
        (good, client_only.headers, 403),  # not a doer
        (good, owner.headers, 403),  # own gig
        ({"proposal": "", "bidAmount": 1000}, doer.headers, 400),
        ({"proposal": "x" * 5001, "bidAmount": 1000}, doer.headers, 400),
        ({"proposal": "ok", "bidAmount": 0}, doer.headers, 400),
        ({"proposal": "ok", "bidAmount": "5"}, doer.headers, 400),
        ({"proposal": "ok", "bidAmount": 5, "rate": 1}, doer.headers, 400),
        ({"proposal": "ok"}, doer.headers, 400),
    ]
    for body, headers, status in cases:
        resp = await client.post(url, json=body, headers=headers)
        assert resp.status == status, (body, headers, await resp.json())
    missing = await client.post(
        "/api/gigs/00000000-0000-0000-0000-000000000000/applications", json=good, headers=doer.headers
    )
    assert missing.status == 404
    assert await pool.fetchval("SELECT count(*) FROM applications WHERE gig_id = $1", gig["id"]) == 0
    assert (await gig_row(pool, gig["id"]) or {})["applications_count"] == 0
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM outbox WHERE event_type = 'NEW_APPLICATION' AND payload->>'gigId' = $1",
            gig["id"],
        )
        == 0
    )


async def test_apply_once_per_gig_and_only_while_open(
    client: Any, pool: asyncpg.Pool, owner: TestUser, doer: TestUser, stranger: TestUser
) -> None:
    gig = await create_gig(client, owner)
    await apply(client, doer, gig["id"])
    again = await client.post(
        f"/api/gigs/{gig['id']}/applications",
        json={"proposal": "again", "bidAmount": 5},
        headers=doer.headers,
    )
    assert again.status == 409
    await client.post(f"/api/gigs/{gig['id']}/close", headers=owner.headers)
    closed = await client.post(
        f"/api/gigs/{gig['id']}/applications",
        json={"proposal": "late", "bidAmount": 5},
        headers=stranger.headers,
    )
    assert closed.status == 409
    assert (await gig_row(pool, gig["id"]) or {})["applications_count"] == 1


async def test_lists(client: Any, pool: asyncpg.Pool, settings: Settings, owner: TestUser) -> None:
    gig = await create_gig(client, owner)
    doers = [await make_user(pool, settings, roles=("doer",)) for _ in range(3)]
    apps = [await apply(client, d, gig["id"], bid=1000 + i) for i, d in enumerate(doers)]
    resp = await client.get(f"/api/gigs/{gig['id']}/applications", headers=owner.headers)
    body = await resp.json()
    assert resp.status == 200
    assert [a["id"] for a in body["data"]] == [a["id"] for a in reversed(apps)]
    assert body["total"] == 3
    resp = await client.get(
        f"/api/gigs/{gig['id']}/applications", params={"limit": 1, "page": 2}, headers=owner.headers
    )
    assert [a["id"] for a in (await resp.json())["data"]] == [apps[1]["id"]]
    resp = await client.get(f"/api/gigs/{gig['id']}/applications", headers=doers[0].headers)
    assert resp.status == 403
    resp = await client.get(
        f"/api/gigs/{gig['id']}/applications", params={"status": "x"}, headers=owner.headers
    )
    assert resp.status == 400
    mine = await client.get("/api/applications/mine", headers=doers[1].headers)
    body = await mine.json()
    assert [a["id"] for a in body["data"]] == [apps[1]["id"]] and body["total"] == 1
    assert (await client.get("/api/applications/mine")).status == 401
    resp = await client.get("/api/applications/mine", params={"limit": "0"}, headers=doers[1].headers)
    assert resp.status == 400


async def test_withdraw(
    client: Any, pool: asyncpg.Pool, owner: TestUser, doer: TestUser, stranger: TestUser
) -> None:
    gig = await create_gig(client, owner)
    application = await apply(client, doer, gig["id"])
    url = f"/api/applications/{application['id']}/withdraw"
    assert (await client.post(url)).status == 401
    assert (await client.post(url, headers=stranger.headers)).status == 404  # not theirs to see
    assert (await client.post(url, headers=owner.headers)).status == 403  # the owner cannot withdraw it
    resp = await client.post(url, headers=doer.headers)
    assert resp.status == 200
    assert (await resp.json())["data"]["status"] == "withdrawn"
    assert (await gig_row(pool, gig["id"]) or {})["applications_count"] == 0
    again = await client.post(url, headers=doer.headers)
    assert again.status == 409
    assert (await gig_row(pool, gig["id"]) or {})["applications_count"] == 0
    # once per gig: a withdrawn application still counts as the doer's one application
    resp = await client.post(
        f"/api/gigs/{gig['id']}/applications", json={"proposal": "back", "bidAmount": 5}, headers=doer.headers
    )
    assert resp.status == 409


async def test_reject(
    client: Any, pool: asyncpg.Pool, owner: TestUser, doer: TestUser, stranger: TestUser
) -> None:
    gig = await create_gig(client, owner)
    application = await apply(client, doer, gig["id"])
    url = f"/api/applications/{application['id']}/reject"
    assert (await client.post(url)).status == 401
    assert (await client.post(url, headers=stranger.headers)).status == 404
    assert (await client.post(url, headers=doer.headers)).status == 403
    status = await pool.fetchval("SELECT status FROM applications WHERE id = $1", application["id"])
    assert status == "pending"
    resp = await client.post(url, headers=owner.headers)
    assert resp.status == 200
    assert (await resp.json())["data"]["status"] == "rejected"
    assert (await client.post(url, headers=owner.headers)).status == 409
    accept = await client.post(f"/api/applications/{application['id']}/accept", headers=owner.headers)
    assert accept.status == 409
    missing = await client.post(
        "/api/applications/00000000-0000-0000-0000-000000000000/reject", headers=owner.headers
    )
    assert missing.status == 404


async def test_accept_opens_the_order(
    client: Any, pool: asyncpg.Pool, settings: Settings, owner: TestUser, doer: TestUser, stranger: TestUser
) -> None:
    gig = await create_gig(client, owner)
    chosen = await apply(client, doer, gig["id"], bid=120_000)
    other = await apply(client, stranger, gig["id"], bid=100_000)
    url = f"/api/applications/{chosen['id']}/accept"
    assert (await client.post(url)).status == 401
    assert (await client.post(url, headers=doer.headers)).status == 403
    outsider = await make_user(pool, settings)
    assert (await client.post(url, headers=outsider.headers)).status == 404
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE gig_id = $1", gig["id"]) == 0

    resp = await client.post(url, headers=owner.headers)
    body = await resp.json()
    assert resp.status == 200, body
    order = body["data"]["order"]
    assert body["data"]["application"]["status"] == "accepted"
    assert order["gigId"] == gig["id"] and order["doerId"] == doer.id and order["clientId"] == owner.id
    assert order["amount"] == 120_000
    assert order["platformFee"] == 120_000 * settings.platform_fee_bps // 10_000
    assert (order["status"], order["escrowState"]) == ("pending_payment", "awaiting_payment")
    assert (await gig_row(pool, gig["id"]) or {})["status"] == "in_progress"
    statuses = dict(
        await pool.fetch("SELECT id::text, status FROM applications WHERE gig_id = $1", gig["id"])
    )
    assert statuses == {chosen["id"]: "accepted", other["id"]: "rejected"}
    update = await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE event_type = 'ORDER_UPDATE' AND payload->>'orderId' = $1",
        order["id"],
    )
    assert update == 1
    # the other application can no longer be accepted; nor can this one twice
    assert (await client.post(f"/api/applications/{other['id']}/accept", headers=owner.headers)).status == 409
    assert (await client.post(url, headers=owner.headers)).status == 409
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE gig_id = $1", gig["id"]) == 1
    # and the gig, having an order, cannot be deleted
    assert (await client.delete(f"/api/gigs/{gig['id']}", headers=owner.headers)).status == 409


async def test_accept_on_a_closed_gig(
    client: Any, pool: asyncpg.Pool, owner: TestUser, doer: TestUser
) -> None:
    gig = await create_gig(client, owner)
    application = await apply(client, doer, gig["id"])
    await client.post(f"/api/gigs/{gig['id']}/close", headers=owner.headers)
    resp = await client.post(f"/api/applications/{application['id']}/accept", headers=owner.headers)
    assert resp.status == 200
    assert (await gig_row(pool, gig["id"]) or {})["status"] == "in_progress"


@pytest.mark.parametrize("rounds", [3])
async def test_concurrent_accepts_make_one_order(
    client: Any, pool: asyncpg.Pool, settings: Settings, owner: TestUser, rounds: int
) -> None:
    for _ in range(rounds):
        gig = await create_gig(client, owner)
        doers = [await make_user(pool, settings, roles=("doer",)) for _ in range(4)]
        apps = [await apply(client, d, gig["id"]) for d in doers]
        responses = await asyncio.gather(
            *(client.post(f"/api/applications/{a['id']}/accept", headers=owner.headers) for a in apps)
        )
        statuses = sorted(r.status for r in responses)
        assert statuses == [200, 409, 409, 409]
        assert await pool.fetchval("SELECT count(*) FROM orders WHERE gig_id = $1", gig["id"]) == 1
        accepted = await pool.fetchval(
            "SELECT count(*) FROM applications WHERE gig_id = $1 AND status = 'accepted'", gig["id"]
        )
        assert accepted == 1
