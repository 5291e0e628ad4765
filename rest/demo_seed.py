"""`python -m hub demo-seed`: two demo users with one funded order between them, for /demo.

Dev mode only. Creates (or finds) a client (+919000000001) and a doer (+919000000002) with complete
profiles, a gig of the client's, the doer's accepted application, and the order, opened with
domain.orders.open_order and funded through the sandbox gateway's checkout and the `fund` transition,
so the escrow holds the amount in the ledger like any paid order. Idempotent: every row is looked up
before it is made, under one advisory lock, in one transaction; a second run changes nothing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from domain import ledger
from domain.gateway_sandbox import SandboxGateway
from domain.gateways import gateway_for
from domain.orders import Order, open_order, transition
from hub.settings import Settings

if TYPE_CHECKING:
    from hub.db import Conn

CLIENT_PHONE = "+919000000001"
DOER_PHONE = "+919000000002"
GIG_TITLE = "Logo for the college fest (demo)"
AMOUNT = 150_000  # paise: ₹1,500
_LOCK = 0x67696777646D6F00  # advisory lock of the seed: two concurrent runs seed once

# (name, bio) of the client and of the doer; the email is made from the phone, so it is unique too.
_PROFILES: tuple[tuple[str, str], tuple[str, str]] = (
    ("Asha (demo client)", "Organiser of the college fest. Seeded by ./run demo-seed."),
    ("Ravi (demo doer)", "Designer, final year. Seeded by ./run demo-seed."),
)
_COMMON: dict[str, Any] = {
    "university": "Demo Institute of Technology",
    "course": "B.Des",
    "year": 3,
    "graduation_year": 2027,
}


class DemoSeedError(Exception):
    """The seed cannot run here (not dev mode, or no sandbox gateway); str() says what to do."""


@dataclass(frozen=True)
class DemoSeed:
    """The ids the seed made or found; `created` is False when everything already existed."""

    client_id: str
    doer_id: str
    gig_id: str
    application_id: str
    order_id: str
    created: bool


async def _user(conn: Conn, phone: str, profile: tuple[str, str]) -> tuple[str, bool]:
    """The user with `phone`, made with a complete profile, or completed where fields are missing
    (e.g. someone logged in with the demo phone before seeding)."""
    name, bio = profile
    email = f"demo-{phone.lstrip('+')}@demo.gigwire.test"
    fields = {**_COMMON, "name": name, "bio": bio, "email": email}
    existing = await conn.fetchval("SELECT id::text FROM users WHERE phone = $1", phone)
    if existing is not None:
        sets = ", ".join(f"{c} = COALESCE({c}, ${i})" for i, c in enumerate(fields, start=2))
        await conn.execute(f"UPDATE users SET {sets} WHERE id = $1", existing, *fields.values())
        return str(existing), False
    cols = ", ".join(["phone", "phone_verified", *fields])
    marks = ", ".join(f"${i}" for i in range(1, len(fields) + 3))
    user_id = await conn.fetchval(
        f"INSERT INTO users ({cols}) VALUES ({marks}) RETURNING id::text", phone, True, *fields.values()
    )
    return str(user_id), True


async def _gig(conn: Conn, client_id: str, currency: str) -> tuple[str, bool]:
    found = await conn.fetchval(
        "SELECT id::text FROM gigs WHERE client_id = $1 AND title = $2 ORDER BY created_at LIMIT 1",
        client_id,
        GIG_TITLE,
    )
    if found is not None:
        return str(found), False
    gig_id = await conn.fetchval(
        "INSERT INTO gigs (client_id, title, description, category, skills, budget_min, budget_max,"
        " currency, deadline, status, applications_count)"
        " VALUES ($1, $2, $3, 'design', $4, $5, $6, $7, $8, 'in_progress', 1) RETURNING id::text",
        client_id,
        GIG_TITLE,
        "A logo and a poster for the fest, in two colours. Seeded by ./run demo-seed.",
        ["illustrator", "branding"],
        AMOUNT // 2,
        AMOUNT * 2,
        currency,
        dt.datetime.now(dt.UTC) + dt.timedelta(days=14),
    )
    return str(gig_id), True


async def _application(conn: Conn, gig_id: str, doer_id: str, currency: str) -> tuple[str, bool]:
    found = await conn.fetchval(
        "SELECT id::text FROM applications WHERE gig_id = $1 AND doer_id = $2", gig_id, doer_id
    )
    if found is not None:
        return str(found), False
    app_id = await conn.fetchval(
        "INSERT INTO applications (gig_id, doer_id, proposal, bid_amount, currency, status)"
        " VALUES ($1, $2, $3, $4, $5, 'accepted') RETURNING id::text",
        gig_id,
        doer_id,
        "I have designed logos for three fests; first drafts in two days.",
        AMOUNT,
        currency,
    )
    return str(app_id), True


async def _fund(conn: Conn, settings: Settings, order: Order, client_id: str) -> None:
    """Pay for the order as the demo client would: a sandbox gateway order, its completed checkout,
    then the `fund` transition (gateway clearing -> the order's escrow, in the ledger)."""
    gateway = gateway_for(settings)
    if not isinstance(gateway, SandboxGateway):
        raise DemoSeedError(
            "demo-seed pays through the sandbox gateway: unset PAYMENT_GATEWAY or set 'sandbox'"
        )
    gw_order = await gateway.create_order(
        amount=order.amount,
        currency=order.currency,
        receipt=f"order_{order.id}",
        notes={"orderId": order.id, "demo": "true"},
    )
    await conn.execute("UPDATE orders SET payment_gateway_order_id = $2 WHERE id = $1", order.id, gw_order.id)
    paid = gateway.checkout(gw_order.id)
    await transition(
        conn,
        order.id,
        "fund",
        client_id,
        payment_id=paid["razorpay_payment_id"],
        gateway_order_id=gw_order.id,
    )


async def seed_demo(
    pool: asyncpg.Pool, settings: Settings, phones: tuple[str, str] = (CLIENT_PHONE, DOER_PHONE)
) -> DemoSeed:
    """Make (or find) the demo users (client and doer, by `phones`), gig, accepted application and
    funded order, in one transaction. Raises DemoSeedError outside dev mode, without the sandbox
    gateway, or when the order's escrow does not hold its amount afterwards (nothing is kept then)."""
    if not settings.is_dev:
        raise DemoSeedError("demo-seed runs in dev mode only (GIGWIRE_ENV=dev)")
    currency = settings.currency
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        client_id, new_client = await _user(conn, phones[0], _PROFILES[0])
        doer_id, new_doer = await _user(conn, phones[1], _PROFILES[1])
        gig_id, new_gig = await _gig(conn, client_id, currency)
        app_id, new_app = await _application(conn, gig_id, doer_id, currency)
        order_id = await conn.fetchval("SELECT id::text FROM orders WHERE application_id = $1", app_id)
        new_order = order_id is None
        if order_id is None:
            order = await open_order(
                conn,
                gig_id=gig_id,
                application_id=app_id,
                client_id=client_id,
                doer_id=doer_id,
                amount=AMOUNT,
                currency=currency,
                actor_id=client_id,
                fee_bps=settings.platform_fee_bps,
            )
            await _fund(conn, settings, order, client_id)
            order_id = order.id
        held = await ledger.balance(conn, ledger.escrow_account(str(order_id)))
        row = await conn.fetchrow("SELECT escrow_state, amount FROM orders WHERE id = $1", order_id)
        if row is None or (row["escrow_state"] == "funded" and held != row["amount"]):
            # Never leave a funded order whose escrow does not hold it: the transaction rolls back.
            raise DemoSeedError(f"the ledger check failed: order {order_id}'s escrow holds {held}")
    return DemoSeed(
        client_id=client_id,
        doer_id=doer_id,
        gig_id=gig_id,
        application_id=app_id,
        order_id=str(order_id),
        created=any((new_client, new_doer, new_gig, new_app, new_order)),
    )


async def run_cli(dsn: str, settings: Settings) -> int:
    """The `demo-seed` command: seed, then print how to try it. Returns the process exit code."""
    from hub.db import create_pool

    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        seeded = await seed_demo(pool, settings)
    except DemoSeedError as exc:
        print(f"gigwire demo-seed: {exc}")
        return 1
    finally:
        await pool.close()
    shown = "localhost" if settings.host in ("0.0.0.0", "::") else settings.host
    verb = "seeded" if seeded.created else "already seeded, nothing changed"
    print(
        f"demo {verb}: order {seeded.order_id} (funded) between\n"
        f"  client {CLIENT_PHONE} and doer {DOER_PHONE}\n"
        f"Start ./run, open http://{shown}:{settings.port}/demo in two browser tabs,\n"
        "log in as each phone; the one-time code is in ./run's log (logger gigwire.otp)."
    )
    return 0
