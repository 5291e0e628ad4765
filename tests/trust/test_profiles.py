"""Public profiles: GET /api/users/{id} answers exactly the public fields (enumerated here: a new
field fails this test until it is judged public), never a private one, with the values the user's
reviews and completed orders give; the applicants listed to a gig's owner carry the same profile."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
from aiohttp.test_utils import TestClient

from hub.settings import Settings
from rest.profiles import PublicProfile
from rest.users import User
from tests.factories import make_order, make_user
from tests.market.conftest import apply, create_gig
from tests.trust.conftest import completed_order, review

PUBLIC = {
    "id", "name", "avatarUrl", "bio", "university", "skills", "rating", "reviewCount", "trustScore",
    "badges", "completedGigs", "memberSince", "phoneVerified", "emailVerified", "idVerified",
}  # fmt: skip
PRIVATE = {
    "phone", "email", "walletBalance", "pendingBalance", "totalEarnings", "bankAccountId",
    "idDocumentUrl", "roles", "course", "year", "graduationYear", "currency", "lastActiveAt",
    "profileComplete",
}  # fmt: skip


def test_every_user_field_is_judged_public_or_private() -> None:
    """A field added to User must be put in PUBLIC or PRIVATE here, and PublicProfile carries
    exactly PUBLIC."""
    user_fields = {f.encode_name for f in msgspec.structs.fields(User)}
    profile_fields = {f.encode_name for f in msgspec.structs.fields(PublicProfile)}
    assert profile_fields == PUBLIC
    assert not PUBLIC & PRIVATE
    assert user_fields - {"createdAt"} <= PUBLIC | PRIVATE, user_fields - PUBLIC - PRIVATE  # as memberSince


async def test_public_profile_has_only_public_fields(
    client: TestClient[Any, Any], pool: asyncpg.Pool, settings: Settings
) -> None:
    secret_email = "hidden.person@example.edu"
    user = await make_user(
        pool, settings, name="Asha Rao", bio="I draw.", university="IIT Bombay", email=secret_email,
        avatar_url="https://cdn.example/a.png", id_document_url="https://cdn.example/id-secret.png",
    )  # fmt: skip
    bank = await pool.fetchval(
        "INSERT INTO bank_accounts (user_id, holder_name, ifsc, last4, number_hash, status)"
        " VALUES ($1, 'Asha Rao', 'HDFC0001234', '4321', 'h', 'verified') RETURNING id",
        user.id,
    )
    await pool.execute(
        "UPDATE users SET wallet_balance = 0, bank_account_id = $2 WHERE id = $1", user.id, bank
    )
    viewer = await make_user(pool, settings)
    # Completed work as the doer gives skills (most frequent first) and completedGigs.
    for _ in range(2):
        await completed_order(pool, viewer, user)
    await pool.execute("UPDATE users SET completed_gigs = 2 WHERE id = $1", user.id)
    gig_id = await pool.fetchval(
        "SELECT gig_id FROM orders WHERE doer_id = $1 ORDER BY created_at LIMIT 1", user.id
    )
    await pool.execute("UPDATE gigs SET skills = '{figma,photoshop}' WHERE id = $1", gig_id)
    order_id = await completed_order(pool, viewer, user)
    assert (await review(client, viewer, order_id, 4, "neat"))[0] == 201

    r = await client.get(f"/api/users/{user.id}", headers=viewer.headers)
    assert r.status == 200, await r.text()
    raw = await r.text()
    data = (await r.json())["data"]
    assert set(data) == PUBLIC
    assert not set(data) & PRIVATE
    for leak in (user.phone, secret_email, "id-secret"):
        assert leak not in raw
    assert data["id"] == user.id and data["name"] == "Asha Rao" and data["university"] == "IIT Bombay"
    assert data["skills"] == ["photoshop", "figma"]  # photoshop in all 3 completed gigs, figma in 1
    assert (data["rating"], data["reviewCount"], data["completedGigs"]) == (4.0, 1, 2)
    assert data["trustScore"] == await pool.fetchval("SELECT trust_score FROM users WHERE id = $1", user.id)
    assert data["phoneVerified"] is True and data["idVerified"] is False
    assert data["memberSince"] > 0

    # The caller's own /me is still the full profile, not the public one.
    r = await client.get("/api/users/me", headers=user.headers)
    assert (await r.json())["data"]["phone"] == user.phone


async def test_profile_refusals(client: TestClient[Any, Any], pool: asyncpg.Pool, settings: Settings) -> None:
    user = await make_user(pool, settings)
    assert (await client.get(f"/api/users/{user.id}")).status == 401
    r = await client.get("/api/users/00000000-0000-0000-0000-000000000000", headers=user.headers)
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
    r = await client.get("/api/users/nobody", headers=user.headers)
    assert r.status == 404


async def test_applicants_carry_their_public_profile(
    client: TestClient[Any, Any], pool: asyncpg.Pool, settings: Settings
) -> None:
    owner = await make_user(pool, settings)
    doers = [await make_user(pool, settings, name=f"Doer {i}") for i in range(2)]
    gig = await create_gig(client, owner)
    for d in doers:
        await apply(client, d, gig["id"])
    # One applicant already has a review from an earlier order.
    earlier = await make_order(pool, owner, doers[0], status="completed", escrow_state="released")
    await pool.execute("UPDATE orders SET completed_at = now() WHERE id = $1", earlier)
    assert (await review(client, owner, earlier, 5))[0] == 201

    r = await client.get(f"/api/gigs/{gig['id']}/applications", headers=owner.headers)
    assert r.status == 200, await r.text()
    items = (await r.json())["data"]
    by_doer = {a["doerId"]: a["applicant"] for a in items}
    assert set(by_doer) == {d.id for d in doers}
    for d in doers:
        applicant = by_doer[d.id]
        assert set(applicant) == PUBLIC and applicant["id"] == d.id
        assert d.phone not in str(applicant)
        profile = (await (await client.get(f"/api/users/{d.id}", headers=owner.headers)).json())["data"]
        assert applicant == profile  # the same model, the same values
    assert (by_doer[doers[0].id]["rating"], by_doer[doers[0].id]["reviewCount"]) == (5.0, 1)
    assert by_doer[doers[1].id]["name"] == "Doer 1"
    # The doer's own list is not the owner's: no applicant embedded there.
    r = await client.get("/api/applications/mine", headers=doers[0].headers)
    assert "applicant" not in (await r.json())["data"][0]
