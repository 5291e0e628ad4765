"""DELETE /api/users/me over REST: refused while orders are open or money is held (a payout on its way
included), otherwise personal data erased, shared history kept, tokens refused; and its races with a
withdrawal, an application and an order being opened."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from hub.settings import Settings
from tests.factories import TestUser, make_order, make_user
from tests.market.conftest import gig_body
from tests.money.conftest import FakeRazorpay, Parties, act, idem, paid_order, webhook

Client = TestClient[Any, Any]


async def _delete(api: Client, user: TestUser) -> tuple[int, Any]:
    r = await api.delete("/api/users/me", headers=user.headers)
    return r.status, await r.json()


async def _earned(api: Client, pool: asyncpg.Pool, client: TestUser, doer: TestUser) -> str:
    """A completed order of `client` and `doer` paid through the gateway: the doer's wallet holds
    90_000. Returns the order id."""
    order_id = await paid_order(api, pool, client, doer)
    deliverables = {"deliverables": [{"url": "https://files.example/done.png"}]}
    assert (await act(api, doer, order_id, "submit", deliverables))[0] == 200
    assert (await act(api, client, order_id, "approve"))[0] == 200
    return order_id


async def _verified_bank(api: Client, user: TestUser) -> str:
    account = {"holderName": "Doer Person", "ifsc": "HDFC0001234", "accountNumber": "123456789012"}
    r = await api.post("/api/bank-accounts", json=account, headers=idem(user))
    bank_id = str((await r.json())["data"]["id"])
    r = await api.post(f"/api/bank-accounts/{bank_id}/verify", headers=idem(user))
    assert (await r.json())["data"]["status"] == "verified"
    return bank_id


async def test_refused_while_orders_are_open_or_money_is_held(
    api: Client, pool: asyncpg.Pool, parties: Parties, razorpay: FakeRazorpay
) -> None:
    c, d = parties.client, parties.doer
    r = await api.delete("/api/users/me")
    assert r.status == 401
    order_id = await paid_order(api, pool, c, d)
    for user in (c, d):
        status, body = await _delete(api, user)
        assert status == 409
        assert body["error"]["details"] == {"reason": "open_orders", "orderIds": [order_id]}
    deliverables = {"deliverables": [{"url": "https://files.example/done.png"}]}
    await act(api, d, order_id, "submit", deliverables)
    await act(api, c, order_id, "approve")

    status, body = await _delete(api, d)
    assert (status, body["error"]["details"]["reason"]) == (409, "money_held")
    assert body["error"]["details"]["walletBalance"] == 90_000

    # Everything withdrawn, but the payout is still on its way: still refused.
    bank_id = await _verified_bank(api, d)
    r = await api.post(
        "/api/wallet/withdraw", json={"amount": 90_000, "bankAccountId": bank_id}, headers=idem(d)
    )
    withdrawal = (await r.json())["data"]
    assert withdrawal["status"] == "processing"
    status, body = await _delete(api, d)
    assert (status, body["error"]["details"]["reason"]) == (409, "payout_pending")
    assert await pool.fetchval("SELECT deleted_at FROM users WHERE id = $1", d.id) is None

    # The payout arrives: the account can go, and the client's completed order does not hold it.
    entity = {"id": withdrawal["payoutId"], "reference_id": withdrawal["id"], "status": "processed"}
    body_bytes, headers = webhook("payout.processed", "payout", entity, event_id="evt_del_1")
    r = await api.post("/api/webhooks/payment", data=body_bytes, headers=headers)
    assert (await r.json())["data"]["outcome"] == "processed"
    status, body = await _delete(api, d)
    assert status == 200, body
    assert body["data"] == {"id": d.id, "deleted": True}
    # Ledger rows and the withdrawal are kept, naming the anonymised user.
    assert await pool.fetchval("SELECT count(*) FROM withdrawals WHERE user_id = $1", d.id) == 1
    kept = await pool.fetchrow("SELECT holder_name, last4 FROM bank_accounts WHERE id = $1", bank_id)
    assert (kept["holder_name"], kept["last4"]) == ("deleted", "0000")


async def test_deletion_erases_personal_data_and_keeps_shared_history(
    api: Client, pool: asyncpg.Pool, settings: Settings, parties: Parties
) -> None:
    c = parties.client
    u = await make_user(pool, settings, bio="Loves typography", avatar_url="https://img.example/me.png")
    phone = u.phone
    done = await make_order(pool, c, u, status="completed", escrow_state="released")
    await pool.execute("INSERT INTO chat_sequences (order_id, last_seq) VALUES ($1, 1)", done)
    await pool.execute(
        "INSERT INTO messages (order_id, seq, sender_id, text) VALUES ($1, 1, $2, 'Here is the logo')",
        done,
        u.id,
    )
    await api.post("/api/devices", json={"token": "dev-token-del", "platform": "android"}, headers=u.headers)
    # Their open gig (with someone else's pending application) and their own pending application.
    r = await api.post("/api/gigs", json=gig_body(), headers=u.headers)
    own_gig = (await r.json())["data"]["id"]
    r = await api.post(
        f"/api/gigs/{own_gig}/applications",
        json={"proposal": "Hire me.", "bidAmount": 60_000},
        headers=c.headers,
    )
    applicant = (await r.json())["data"]["id"]
    r = await api.post("/api/gigs", json=gig_body(), headers=c.headers)
    other_gig = (await r.json())["data"]["id"]
    r = await api.post(
        f"/api/gigs/{other_gig}/applications",
        json={"proposal": "Hire me.", "bidAmount": 60_000},
        headers=u.headers,
    )
    mine = (await r.json())["data"]["id"]
    stranger = await make_user(pool, settings)
    r = await api.post(f"/api/users/{stranger.id}/block", headers=u.headers)
    assert r.status in (200, 201), await r.text()

    status, body = await _delete(api, u)
    assert status == 200, body
    row = await pool.fetchrow("SELECT * FROM users WHERE id = $1", u.id)
    erased = ("phone", "email", "name", "bio", "avatar_url", "university", "course", "graduation_year")
    assert {k: row[k] for k in erased} == dict.fromkeys(erased)
    assert row["deleted_at"] is not None and not row["phone_verified"]
    # Shared history kept, naming the anonymised user.
    assert await pool.fetchval("SELECT text FROM messages WHERE order_id = $1", done) == "Here is the logo"
    assert await pool.fetchval("SELECT status FROM orders WHERE id = $1", done) == "completed"
    # Owned alone: gone. Listings: closed.
    assert await pool.fetchval("SELECT count(*) FROM devices WHERE user_id = $1", u.id) == 0
    assert await pool.fetchval("SELECT count(*) FROM user_blocks WHERE blocker_id = $1", u.id) == 0
    assert await pool.fetchval("SELECT count(*) FROM refresh_tokens WHERE user_id = $1", u.id) == 0
    assert await pool.fetchval("SELECT status FROM gigs WHERE id = $1", own_gig) == "cancelled"
    assert await pool.fetchval("SELECT status FROM applications WHERE id = $1", applicant) == "rejected"
    assert await pool.fetchval("SELECT status FROM applications WHERE id = $1", mine) == "withdrawn"
    assert await pool.fetchval("SELECT applications_count FROM gigs WHERE id = $1", other_gig) == 0
    revoked = await pool.fetchval(
        "SELECT payload FROM outbox WHERE event_type = 'SESSION_REVOKED' AND channels = $1"
        " ORDER BY id DESC LIMIT 1",
        [f"user:{u.id}"],
    )
    assert revoked == {"userId": u.id, "reason": "account_deleted"}
    # Every token of the account is refused from now on, and the phone is free for a new account.
    for path in ("/api/users/me", "/api/users/me/export", "/api/orders"):
        r = await api.get(path, headers=u.headers)
        assert r.status == 401, path
    status, body = await _delete(api, u)
    assert status == 401
    again = await make_user(pool, settings, phone=phone)
    assert again.id != u.id


async def test_export_holds_the_users_data(
    api: Client, pool: asyncpg.Pool, settings: Settings, parties: Parties
) -> None:
    c = parties.client
    u = await make_user(pool, settings, name="Export Me")
    done = await make_order(pool, c, u, status="completed", escrow_state="released")
    await pool.execute("INSERT INTO chat_sequences (order_id, last_seq) VALUES ($1, 2)", done)
    await pool.execute(
        "INSERT INTO messages (order_id, seq, sender_id, text)"
        " VALUES ($1, 1, $2, 'mine'), ($1, 2, $3, 'theirs')",
        done,
        u.id,
        c.id,
    )
    await api.post("/api/devices", json={"token": "dev-token-exp", "platform": "web"}, headers=u.headers)
    r = await api.post("/api/gigs", json=gig_body(), headers=u.headers)
    gig_id = (await r.json())["data"]["id"]
    r = await api.get("/api/users/me/export", headers=u.headers)
    assert r.status == 200
    data = (await r.json())["data"]
    assert data["profile"]["id"] == u.id and data["profile"]["name"] == "Export Me"
    assert [g["id"] for g in data["gigs"]] == [gig_id]
    assert [o["id"] for o in data["orders"]] == [done]
    assert [m["text"] for m in data["messagesSent"]] == ["mine"]
    assert [d["token"] for d in data["devices"]] == ["dev-token-exp"]
    assert [(a["doerId"], a["status"]) for a in data["applications"]] == [(u.id, "accepted")]
    assert data["counts"]["messages_sent"] == 1
    r = await api.get("/api/users/me/export", headers=c.headers)
    assert [m["text"] for m in (await r.json())["data"]["messagesSent"]] == ["theirs"]
    r = await api.get("/api/users/me/export")
    assert r.status == 401


async def test_deletion_racing_a_withdrawal_is_always_refused(
    api: Client, pool: asyncpg.Pool, settings: Settings, parties: Parties
) -> None:
    c = parties.client
    for _ in range(3):
        d = await make_user(pool, settings)
        await _earned(api, pool, c, d)
        bank_id = await _verified_bank(api, d)
        withdraw = api.post(
            "/api/wallet/withdraw", json={"amount": 90_000, "bankAccountId": bank_id}, headers=idem(d)
        )
        w, (status, body) = await asyncio.gather(withdraw, _delete(api, d))
        assert w.status == 201, await w.text()
        assert status == 409 and body["error"]["details"]["reason"] in ("money_held", "payout_pending"), body
        assert await pool.fetchval("SELECT deleted_at FROM users WHERE id = $1", d.id) is None


async def test_deletion_racing_an_application(
    api: Client, pool: asyncpg.Pool, settings: Settings, parties: Parties
) -> None:
    c = parties.client
    r = await api.post("/api/gigs", json=gig_body(), headers=c.headers)
    gig_id = (await r.json())["data"]["id"]
    outcomes = set()
    for _ in range(6):
        u = await make_user(pool, settings)
        apply = api.post(
            f"/api/gigs/{gig_id}/applications",
            json={"proposal": "Me!", "bidAmount": 60_000},
            headers=u.headers,
        )
        a, (status, _) = await asyncio.gather(apply, _delete(api, u))
        assert status in (200, 409), status
        pending = await pool.fetchval(
            "SELECT count(*) FROM applications WHERE doer_id = $1 AND status = 'pending'", u.id
        )
        deleted = await pool.fetchval("SELECT deleted_at IS NOT NULL FROM users WHERE id = $1", u.id)
        # Never a pending application of a deleted account.
        assert not (deleted and pending), (a.status, status)
        assert a.status in (201, 401, 422), await a.text()
        outcomes.add((a.status, status))
    count = await pool.fetchval(
        "SELECT count(*) FROM applications WHERE gig_id = $1 AND status = 'pending'", gig_id
    )
    assert await pool.fetchval("SELECT applications_count FROM gigs WHERE id = $1", gig_id) == count


async def test_deletion_racing_an_order_being_opened(
    api: Client, pool: asyncpg.Pool, settings: Settings, parties: Parties
) -> None:
    c = parties.client
    for _ in range(6):
        u = await make_user(pool, settings)
        r = await api.post("/api/gigs", json=gig_body(), headers=c.headers)
        gig_id = (await r.json())["data"]["id"]
        r = await api.post(
            f"/api/gigs/{gig_id}/applications",
            json={"proposal": "Me!", "bidAmount": 60_000},
            headers=u.headers,
        )
        app_id = (await r.json())["data"]["id"]
        accept = api.post(f"/api/applications/{app_id}/accept", headers=c.headers)
        a, (status, body) = await asyncio.gather(accept, _delete(api, u))
        orders = await pool.fetchval("SELECT count(*) FROM orders WHERE application_id = $1", app_id)
        deleted = await pool.fetchval("SELECT deleted_at IS NOT NULL FROM users WHERE id = $1", u.id)
        # Exactly one wins: an order with a live doer, or a deleted doer and no order.
        assert (a.status, orders, deleted) in ((200, 1, False), (409, 0, True)), (a.status, status, body)
        assert status == (409 if orders else 200)


async def test_deletion_removes_the_users_avatar_and_id_document_media(
    api: Client, pool: asyncpg.Pool, settings: Settings, parties: Parties
) -> None:
    from tests.media.conftest import uploaded

    u = await make_user(pool, settings)
    avatar = await uploaded(api, u, "avatar")
    document = await uploaded(api, u, "id_document")
    attachment = await uploaded(api, u, "gig_attachment")
    r = await api.post("/api/users/me/avatar", json={"mediaId": avatar["id"]}, headers=u.headers)
    assert r.status == 200, await r.text()

    def stored(media_id: str) -> bool:
        return any(media_id in p.name for p in settings.data_dir.rglob("*") if p.is_file())

    assert stored(avatar["id"]) and stored(document["id"])
    status, body = await _delete(api, u)
    assert status == 200, body
    left = await pool.fetch("SELECT id::text AS id, kind FROM media WHERE owner_id = $1", u.id)
    assert [(m["id"], m["kind"]) for m in left] == [(attachment["id"], "gig_attachment")]
    assert not stored(avatar["id"]) and not stored(document["id"])
    assert stored(attachment["id"])
    r = await api.get(f"/api/media/{avatar['id']}/content")
    assert r.status == 404
