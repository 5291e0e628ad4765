"""Housekeeping: expired login codes, dead refresh-token families and old Idempotency-Key records are
deleted in batches, side by side; whatever a request could still need stays."""

from __future__ import annotations

import asyncio
import secrets
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from rest.otp import OTP_SENDER
from rest.refresh import token_hash
from tests.factories import TestUser, open_test_order, random_phone
from tests.rest.conftest import CapturingSender, skip_resend_gap
from tests.services import Services
from tests.workers.conftest import start_worker_process
from workers.housekeeping import Housekeeping
from workers.metrics import WorkerMetrics

Client = TestClient[Any, Any]
HOUR = 3600.0
DAY = 86400.0


async def add_otp(pool: asyncpg.Pool, sent_ago: float, ttl: float = 300.0, used: bool = False) -> str:
    """An otp_codes row sent `sent_ago` seconds ago and valid `ttl` seconds from then; its phone."""
    phone = random_phone()
    await pool.execute(
        "INSERT INTO otp_codes (phone, code_hash, created_at, expires_at, used_at)"
        " VALUES ($1, $2, now() - make_interval(secs => $3), now() - make_interval(secs => $3 - $4),"
        " CASE WHEN $5 THEN now() - make_interval(secs => $3) END)",
        phone,
        secrets.token_bytes(32),
        sent_ago,
        ttl,
        used,
    )
    return phone


async def add_family(
    pool: asyncpg.Pool, user: TestUser, expiries: list[float], revoked: bool = False
) -> list[bytes]:
    """A refresh-token family of `user`, one row per entry of `expiries` (seconds from now that the
    token expires, negative: in the past), all but the last rotated; their token hashes."""
    family = uuid.uuid4()
    hashes = []
    for i, expires_in in enumerate(expiries):
        digest = secrets.token_bytes(32)
        await pool.execute(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, created_at, expires_at,"
            " rotated_at, revoked_at) VALUES ($1, $2, $3, now() - interval '30 days',"
            " now() + make_interval(secs => $4), CASE WHEN $5 THEN now() - interval '1 day' END,"
            " CASE WHEN $6 THEN now() - interval '1 day' END)",
            digest,
            family,
            user.id,
            expires_in,
            i < len(expiries) - 1,
            revoked,
        )
        hashes.append(digest)
    return hashes


async def add_key(pool: asyncpg.Pool, age: float, done: bool = True) -> str:
    """An idempotency_keys record created `age` seconds ago, answered unless not `done`; its key."""
    key = secrets.token_hex(8)
    await pool.execute(
        "INSERT INTO idempotency_keys (user_id, route, key, request_hash, status, response, created_at)"
        " VALUES ($1, 'POST /api/wallet/withdraw', $2, 'h', $3, $4, now() - make_interval(secs => $5))",
        uuid.uuid4(),
        key,
        200 if done else None,
        b"{}" if done else None,
        age,
    )
    return key


async def otp_phones(pool: asyncpg.Pool, phones: list[str]) -> set[str]:
    rows = await pool.fetch("SELECT phone FROM otp_codes WHERE phone = ANY($1::text[])", phones)
    return {r["phone"] for r in rows}


async def token_rows(pool: asyncpg.Pool, hashes: list[bytes]) -> set[bytes]:
    rows = await pool.fetch(
        "SELECT token_hash FROM refresh_tokens WHERE token_hash = ANY($1::bytea[])", hashes
    )
    return {bytes(r["token_hash"]) for r in rows}


async def key_rows(pool: asyncpg.Pool, keys: list[str]) -> set[str]:
    rows = await pool.fetch("SELECT key FROM idempotency_keys WHERE key = ANY($1::text[])", keys)
    return {r["key"] for r in rows}


async def table_counts(pool: asyncpg.Pool) -> dict[str, int]:
    tables = ("otp_codes", "refresh_tokens", "idempotency_keys")
    return {t: int(await pool.fetchval(f"SELECT count(*) FROM {t}")) for t in tables}


def counted(metrics: WorkerMetrics, table: str) -> float:
    value = metrics.registry.get_sample_value("gigwire_housekeeping_deleted_total", {"table": table})
    return value or 0.0


def errors(metrics: WorkerMetrics) -> float:
    return metrics.registry.get_sample_value("gigwire_worker_errors_total", {"loop": "housekeeping"}) or 0.0


async def test_what_can_no_longer_matter_goes_and_the_rest_stays(
    pool: asyncpg.Pool, user_factory: Any
) -> None:
    user = await user_factory()
    otp_gone = [
        await add_otp(pool, sent_ago=2 * HOUR),
        await add_otp(pool, sent_ago=2 * HOUR, used=True),
        await add_otp(pool, sent_ago=HOUR + 60),
    ]
    otp_kept = [
        await add_otp(pool, sent_ago=0),  # live
        await add_otp(pool, sent_ago=0, used=True),  # used, still within its expiry
        await add_otp(pool, sent_ago=600),  # expired, but sent within the hour's throttle window
        await add_otp(pool, sent_ago=HOUR - 60, ttl=HOUR - 120),  # same, expired just now
        await add_otp(pool, sent_ago=2 * HOUR, ttl=3 * HOUR),  # not yet expired, whatever its age
    ]
    tokens_gone = [
        *await add_family(pool, user, [-40 * DAY, -20 * DAY, -2 * DAY]),  # every token long expired
        *await add_family(pool, user, [-3 * DAY, -2 * DAY], revoked=True),  # logged out long ago
    ]
    tokens_kept = [
        # Live: its rotated first token expired long ago, but reuse of it must still revoke the family.
        *await add_family(pool, user, [-40 * DAY, -10 * DAY, 20 * DAY]),
        *await add_family(pool, user, [-2 * DAY, -HOUR]),  # newest expired within the day kept
        *await add_family(pool, user, [-5 * DAY, DAY], revoked=True),  # revoked, newest not expired
        *await add_family(pool, user, [-1.5 * DAY, DAY - 60]),  # rotated row alone past, newest live
    ]
    keys_gone = [await add_key(pool, 25 * HOUR), await add_key(pool, 25 * HOUR, done=False)]
    keys_kept = [await add_key(pool, 23 * HOUR), await add_key(pool, 0), await add_key(pool, 0, done=False)]

    metrics = WorkerMetrics()
    deleted = await Housekeeping(pool, metrics, idempotency_retention_s=DAY).sweep()

    assert await otp_phones(pool, otp_gone + otp_kept) == set(otp_kept)
    assert await token_rows(pool, tokens_gone + tokens_kept) == set(tokens_kept)
    assert await key_rows(pool, keys_gone + keys_kept) == set(keys_kept)
    assert deleted["otp_codes"] >= len(otp_gone)
    assert deleted["refresh_tokens"] >= len(tokens_gone)
    assert deleted["idempotency_keys"] >= len(keys_gone)
    for table, n in deleted.items():
        assert counted(metrics, table) == n
    assert errors(metrics) == 0

    # A second sweep finds nothing of these left to delete, and still keeps the rest.
    await Housekeeping(pool, metrics, idempotency_retention_s=DAY).sweep()
    assert await otp_phones(pool, otp_kept) == set(otp_kept)
    assert await token_rows(pool, tokens_kept) == set(tokens_kept)
    assert await key_rows(pool, keys_kept) == set(keys_kept)


async def test_idempotency_retention_is_the_configured_one(pool: asyncpg.Pool) -> None:
    two_hours, four_hours = await add_key(pool, 2 * HOUR), await add_key(pool, 4 * HOUR)
    await Housekeeping(pool, WorkerMetrics(), idempotency_retention_s=3 * HOUR).sweep()
    assert await key_rows(pool, [two_hours, four_hours]) == {two_hours}


async def test_a_backlog_of_many_batches_is_finished_in_one_sweep(
    pool: asyncpg.Pool, user_factory: Any
) -> None:
    user = await user_factory()
    phones = [await add_otp(pool, sent_ago=3 * HOUR) for _ in range(40)]
    tokens = [h for _ in range(15) for h in await add_family(pool, user, [-5 * DAY, -3 * DAY])]
    keys = [await add_key(pool, 2 * DAY) for _ in range(33)]
    metrics = WorkerMetrics()
    deleted = await Housekeeping(pool, metrics, batch=7).sweep()
    assert await otp_phones(pool, phones) == set()
    assert await token_rows(pool, tokens) == set()
    assert await key_rows(pool, keys) == set()
    assert (
        deleted["otp_codes"] >= 40 and deleted["refresh_tokens"] >= 30 and deleted["idempotency_keys"] >= 33
    )


async def test_racing_sweeps_delete_each_row_once_and_never_fail(
    pool: asyncpg.Pool, user_factory: Any
) -> None:
    user = await user_factory()
    phones = [await add_otp(pool, sent_ago=3 * HOUR) for _ in range(120)]
    tokens = [h for _ in range(40) for h in await add_family(pool, user, [-5 * DAY, -3 * DAY, -2 * DAY])]
    keys = [await add_key(pool, 2 * DAY) for _ in range(120)]
    kept = await add_otp(pool, sent_ago=0)
    before = await table_counts(pool)
    sweeps = [Housekeeping(pool, WorkerMetrics(), batch=9) for _ in range(4)]
    results = await asyncio.gather(*(s.sweep() for s in sweeps))
    after = await table_counts(pool)

    assert await otp_phones(pool, [*phones, kept]) == {kept}
    assert await token_rows(pool, tokens) == set()
    assert await key_rows(pool, keys) == set()
    for table in before:
        # What the sweeps say they deleted is exactly what vanished: no row counted twice.
        assert sum(r[table] for r in results) == before[table] - after[table]
    assert before["otp_codes"] - after["otp_codes"] >= 120
    assert before["refresh_tokens"] - after["refresh_tokens"] >= 120
    assert before["idempotency_keys"] - after["idempotency_keys"] >= 120
    assert all(errors(s._metrics) == 0 for s in sweeps)


async def test_a_sweep_asked_to_stop_deletes_no_further_batch(pool: asyncpg.Pool) -> None:
    phones = [await add_otp(pool, sent_ago=3 * HOUR) for _ in range(5)]
    stopping = asyncio.Event()
    stopping.set()
    deleted = await Housekeeping(pool, WorkerMetrics(), batch=2).sweep(stopping)
    assert deleted == {"otp_codes": 0, "refresh_tokens": 0, "idempotency_keys": 0, "feed": 0}
    assert await otp_phones(pool, phones) == set(phones)


# Through the REST API: what a client sees after a sweep.


async def api_client(
    aiohttp_client: Any, make_app: Callable[..., web.Application]
) -> tuple[Client, CapturingSender]:
    sender = CapturingSender()
    app = make_app(otp_sends_per_ip=1_000_000)
    app[OTP_SENDER] = sender
    client: Client = await aiohttp_client(app)
    return client, sender


async def login(api: Client, sender: CapturingSender, phone: str) -> dict[str, Any]:
    resp = await api.post("/api/auth/send-otp", json={"phone": phone})
    assert resp.status == 200, await resp.text()
    resp = await api.post("/api/auth/verify-otp", json={"phone": phone, "otp": sender.last(phone)})
    body = await resp.json()
    assert resp.status == 200, body
    data: dict[str, Any] = body["data"]
    return data


async def reason_of(resp: Any) -> str:
    body = await resp.json()
    assert resp.status == 401, body
    reason: str = body["error"]["details"]["reason"]
    return reason


async def test_after_a_sweep_an_old_code_is_unknown_and_a_new_login_works(
    aiohttp_client: Any, make_app: Callable[..., web.Application], pool: asyncpg.Pool, services: Services
) -> None:
    api, sender = await api_client(aiohttp_client, make_app)
    phone = random_phone()
    first = await login(api, sender, phone)
    old_code = sender.last(phone)
    await pool.execute(
        "UPDATE otp_codes SET created_at = created_at - interval '2 hours',"
        " expires_at = expires_at - interval '2 hours' WHERE phone = $1",
        phone,
    )
    await Housekeeping(pool, WorkerMetrics()).sweep()
    assert await otp_phones(pool, [phone]) == set()
    resp = await api.post("/api/auth/verify-otp", json={"phone": phone, "otp": old_code})
    assert await reason_of(resp) == "no_code"
    await skip_resend_gap(services, phone)
    again = await login(api, sender, phone)
    assert again["user"]["id"] == first["user"]["id"] and again["isNewUser"] is False


async def test_after_a_sweep_reuse_still_revokes_a_live_family_and_a_dead_one_is_unknown(
    aiohttp_client: Any, make_app: Callable[..., web.Application], pool: asyncpg.Pool
) -> None:
    api, sender = await api_client(aiohttp_client, make_app)
    live = await login(api, sender, random_phone())
    api.session.cookie_jar.clear()
    resp = await api.post("/api/auth/refresh", json={"refreshToken": live["refreshToken"]})
    assert resp.status == 200, await resp.text()
    renewed = (await resp.json())["data"]["refreshToken"]
    # The rotated token expired long ago (and was rotated beyond the reuse grace); the newest is live.
    await pool.execute(
        "UPDATE refresh_tokens SET expires_at = now() - interval '40 days',"
        " rotated_at = now() - interval '41 days' WHERE token_hash = $1",
        token_hash(live["refreshToken"]),
    )
    dead = await login(api, sender, random_phone())
    api.session.cookie_jar.clear()
    await pool.execute(
        "UPDATE refresh_tokens SET expires_at = now() - interval '2 days' WHERE user_id = $1",
        dead["user"]["id"],
    )

    await Housekeeping(pool, WorkerMetrics()).sweep()

    kept = await token_rows(pool, [token_hash(live["refreshToken"]), token_hash(renewed)])
    assert len(kept) == 2
    assert await token_rows(pool, [token_hash(dead["refreshToken"])]) == set()
    reuse = await api.post("/api/auth/refresh", json={"refreshToken": live["refreshToken"]})
    assert await reason_of(reuse) == "reused"
    resp = await api.post("/api/auth/refresh", json={"refreshToken": renewed})
    assert await reason_of(resp) == "revoked"
    resp = await api.post("/api/auth/refresh", json={"refreshToken": dead["refreshToken"]})
    assert await reason_of(resp) == "unknown"


async def test_after_a_sweep_a_recent_key_replays_and_an_old_one_runs_anew(
    aiohttp_client: Any, make_app: Callable[..., web.Application], pool: asyncpg.Pool, user_factory: Any
) -> None:
    api, _ = await api_client(aiohttp_client, make_app)
    client, doer = await user_factory(), await user_factory()
    order_id = await open_test_order(pool, client, doer)
    headers = {**client.headers, "Idempotency-Key": secrets.token_hex(8)}
    url = f"/api/orders/{order_id}/cancel"
    first = await api.post(url, json={}, headers=headers)
    assert first.status == 200, await first.text()

    await Housekeeping(pool, WorkerMetrics()).sweep()
    replay = await api.post(url, json={}, headers=headers)
    assert replay.status == 200 and replay.headers.get("Idempotent-Replayed") == "true"
    assert await replay.read() == await first.read()

    await pool.execute(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = $1",
        headers["Idempotency-Key"],
    )
    await Housekeeping(pool, WorkerMetrics(), idempotency_retention_s=DAY).sweep()
    anew = await api.post(url, json={}, headers=headers)
    # Run again, not replayed: the order is cancelled already, so the repeat is refused.
    assert "Idempotent-Replayed" not in anew.headers
    assert anew.status == 409, await anew.text()


async def test_the_worker_process_sweeps_at_start_and_stops_cleanly_on_sigterm(
    pool: asyncpg.Pool, services: Services, tmp_path: Path
) -> None:
    stale = await add_otp(pool, sent_ago=3 * HOUR)
    fresh = await add_otp(pool, sent_ago=0)
    key = await add_key(pool, 3 * HOUR)  # older than this process's retention, younger than the default
    worker, log_path = await start_worker_process(services, tmp_path, IDEMPOTENCY_KEY_RETENTION_S="7200")
    try:
        async with asyncio.timeout(30):
            while await otp_phones(pool, [stale]) or await key_rows(pool, [key]):  # noqa: ASYNC110 - polls another process's work
                await asyncio.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(worker.wait(), 30)
    assert code == 0, log_path.read_text()
    assert await otp_phones(pool, [fresh]) == {fresh}
