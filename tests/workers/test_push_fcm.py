"""The push sender through the real firebase-admin SDK against a local FCM v1 server speaking
HTTP/2 over TLS."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest

from domain.notify import queue_push
from hub.chat import Outgoing, store_batch
from hub.events import Attachment
from tests.workers.conftest import add_device
from tests.workers.fake_fcm import PROJECT, FakeFcm, Reply
from workers import chat_push
from workers.fcm import PushMessage
from workers.metrics import WorkerMetrics
from workers.push import PushWorker


async def _job(pool: asyncpg.Pool, user_id: str, type_: str = "order_update", **kw: Any) -> int:
    async with pool.acquire() as conn, conn.transaction():
        job = await queue_push(
            conn, user_id, type_, "Order funded", "Work can start.", {"orderId": "o-1", "n": 3}, **kw
        )
    assert job is not None
    return job


async def _drain(worker: PushWorker, pool: asyncpg.Pool, job_ids: list[int], rounds: int = 200) -> None:
    """Run the sender until none of `job_ids` is left (retries come due within a fraction of a second)."""
    for _ in range(rounds):
        await worker.run_once()
        left = await pool.fetchval("SELECT count(*) FROM push_jobs WHERE id = ANY($1::bigint[])", job_ids)
        if left == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"push jobs {job_ids} still queued")


@pytest.fixture(autouse=True)
async def _empty_push_queue(pool: asyncpg.Pool) -> None:
    """These tests count what one sender sends: a sender takes every due job and waiting chat push
    of the database, so start from an empty queue (earlier tests of this run leave theirs)."""
    await pool.execute("DELETE FROM push_jobs")
    await pool.execute("DELETE FROM chat_push_pending")


def _count(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels or None) or 0.0


async def test_success_sends_notification_data_and_priorities(
    pool: asyncpg.Pool, fcm: FakeFcm, push_worker: PushWorker, metrics: WorkerMetrics, user_factory: Any
) -> None:
    user = await user_factory()
    android, ios = await add_device(pool, user, "android"), await add_device(pool, user, "ios")
    job = await _job(pool, user.id, collapse_key="chat-o-1")
    await _drain(push_worker, pool, [job])
    assert fcm.token_requests >= 1  # the SDK fetched an OAuth token from the service account's token_uri
    (msg,) = fcm.sent_to(android)
    assert msg["notification"] == {"title": "Order funded", "body": "Work can start."}
    assert msg["data"] == {"orderId": "o-1", "n": "3"}  # values are strings on the wire
    assert msg["android"] == {"collapse_key": "chat-o-1", "priority": "high"}
    (imsg,) = fcm.sent_to(ios)
    assert imsg["apns"]["headers"] == {"apns-priority": "10", "apns-collapse-id": "chat-o-1"}
    assert _count(metrics, "gigwire_push_sent_total") == 2
    assert await pool.fetchval("SELECT count(*) FROM push_jobs WHERE id = $1", job) == 0


async def test_unregistered_and_invalid_tokens_are_pruned(
    pool: asyncpg.Pool, fcm: FakeFcm, push_worker: PushWorker, metrics: WorkerMetrics, user_factory: Any
) -> None:
    user = await user_factory()
    good = await add_device(pool, user)
    gone = await add_device(pool, user)
    bad = await add_device(pool, user, "web")
    fcm.script(gone, Reply("UNREGISTERED"))
    fcm.script(bad, Reply("INVALID_ARGUMENT"))
    job = await _job(pool, user.id)
    await _drain(push_worker, pool, [job])
    tokens = {r["token"] for r in await pool.fetch("SELECT token FROM devices WHERE user_id = $1", user.id)}
    assert good in tokens and gone not in tokens and bad not in tokens
    assert len(fcm.sent_to(good)) == 1
    assert _count(metrics, "gigwire_push_pruned_total", reason="unregistered") == 1
    assert _count(metrics, "gigwire_push_pruned_total", reason="invalid_argument") == 1
    assert await pool.fetchval("SELECT count(*) FROM push_dead_letters WHERE job_id = $1", job) == 0


async def test_503_then_success_retries_only_the_failed_device(
    pool: asyncpg.Pool, fcm: FakeFcm, push_worker: PushWorker, metrics: WorkerMetrics, user_factory: Any
) -> None:
    user = await user_factory()
    flaky, steady = await add_device(pool, user), await add_device(pool, user)
    fcm.script(flaky, Reply("UNAVAILABLE"))
    job = await _job(pool, user.id)
    await push_worker.run_once()
    row = await pool.fetchrow("SELECT tokens, attempts, last_error FROM push_jobs WHERE id = $1", job)
    assert row is not None and row["tokens"] == [flaky] and row["attempts"] == 1
    assert "unavailable" in row["last_error"]
    await _drain(push_worker, pool, [job])
    assert len(fcm.sent_to(flaky)) == 1 and len(fcm.sent_to(steady)) == 1  # steady not sent twice
    assert _count(metrics, "gigwire_push_retried_total", reason="unavailable") == 1
    # The SDK's own transport retries are off: exactly two requests reached the flaky token.
    assert len([m for m in fcm.attempts if m["token"] == flaky]) == 2


async def test_429_retry_after_is_honoured(
    pool: asyncpg.Pool, fcm: FakeFcm, push_worker: PushWorker, metrics: WorkerMetrics, user_factory: Any
) -> None:
    user = await user_factory()
    token = await add_device(pool, user)
    fcm.script(token, Reply("QUOTA_EXCEEDED", {"Retry-After": "30"}))
    job = await _job(pool, user.id)
    await push_worker.run_once()
    wait = await pool.fetchval(
        "SELECT extract(epoch FROM next_attempt_at - now()) FROM push_jobs WHERE id = $1", job
    )
    # base_delay is 0.05 s: only the server's Retry-After can push the next try ~30 s out.
    assert 25 < float(wait) <= 30.5
    assert _count(metrics, "gigwire_push_retried_total", reason="quota_exceeded") == 1
    await pool.execute("UPDATE push_jobs SET next_attempt_at = now() WHERE id = $1", job)
    await _drain(push_worker, pool, [job])
    assert len(fcm.sent_to(token)) == 1


async def test_last_try_goes_to_dead_letters(
    pool: asyncpg.Pool, fcm: FakeFcm, push_worker: PushWorker, metrics: WorkerMetrics, user_factory: Any
) -> None:
    user = await user_factory()
    token = await add_device(pool, user)
    fcm.script(token, *[Reply("INTERNAL")] * 10)
    job = await _job(pool, user.id)
    await _drain(push_worker, pool, [job])
    dead = await pool.fetchrow("SELECT * FROM push_dead_letters WHERE job_id = $1", job)
    assert dead is not None
    assert dead["tokens"] == [token] and dead["attempts"] == push_worker.max_attempts == 4
    assert "internal" in dead["error"] and dead["title"] == "Order funded"
    assert len([m for m in fcm.attempts if m["token"] == token]) == 4
    assert fcm.sent_to(token) == []
    assert _count(metrics, "gigwire_push_dead_lettered_total") == 1
    # The device itself stays: a server-side failure says nothing about the token.
    assert await pool.fetchval("SELECT count(*) FROM devices WHERE token = $1", token) == 1


async def test_nothing_is_pushed_against_a_preference(
    pool: asyncpg.Pool, fcm: FakeFcm, push_worker: PushWorker, metrics: WorkerMetrics, user_factory: Any
) -> None:
    user = await user_factory()
    token = await add_device(pool, user)
    await pool.execute(
        "INSERT INTO notification_preferences (user_id, type, push) VALUES ($1, 'order_update', false)",
        user.id,
    )
    off = await _job(pool, user.id, "order_update")
    on = await _job(pool, user.id, "payment")
    await _drain(push_worker, pool, [off, on])
    sent = fcm.sent_to(token)
    assert len(sent) == 1  # only the payment one
    assert _count(metrics, "gigwire_push_skipped_total", reason="preference") == 1


async def test_chat_push_skipped_when_recipient_watches_the_order_live(
    pool: asyncpg.Pool, fcm: FakeFcm, sender: Any, metrics: WorkerMetrics, user_factory: Any
) -> None:
    from tests.factories import make_order

    client, doer = await user_factory(name="Asha"), await user_factory(name="Ravi")
    order_id = await make_order(pool, client, doer)
    doer_token, client_token = await add_device(pool, doer), await add_device(pool, client)
    watching: set[tuple[str, str]] = {(client.id, order_id)}

    async def seen_live(user_id: str, order: str) -> bool:
        return (user_id, order) in watching

    worker = PushWorker(pool, sender, metrics, seen_live=seen_live, base_delay=0.05)
    # Stored one statement each, as the hub stores them: each statement folds its newest message per
    # chat and recipient into one waiting push (0025) and writes no push job.
    for sender_id, text, attachments in [
        (client.id, "hi there", []),
        (doer.id, "hello", []),
        (doer.id, "  ", [Attachment(url="https://x/1")] * 2),
    ]:
        other = doer.id if sender_id == client.id else client.id
        await store_batch(pool, [Outgoing(order_id, sender_id, text, attachments, None, other)])
    waiting = await pool.fetch(
        "SELECT user_id::text, seq, unread FROM chat_push_pending WHERE order_id = $1 ORDER BY seq", order_id
    )
    assert [tuple(w) for w in waiting] == [(doer.id, 1, 1), (client.id, 3, 2)]
    assert await pool.fetchval("SELECT count(*) FROM push_jobs WHERE order_id = $1", order_id) == 0
    async with pool.acquire() as conn, conn.transaction():
        assert await chat_push.promote(conn, 100, seen_live, metrics) == 2
    # The client watches the chat live: dropped there. The doer's became a job.
    jobs = await pool.fetch("SELECT * FROM push_jobs WHERE order_id = $1 ORDER BY id", order_id)
    assert [(str(j["user_id"]), j["type"], j["body"]) for j in jobs] == [
        (doer.id, "chat_message", "hi there")
    ]
    assert _count(metrics, "gigwire_push_skipped_total", reason="seen_live") == 1
    await _drain(worker, pool, [j["id"] for j in jobs])
    (msg,) = fcm.sent_to(doer_token)
    assert msg["notification"] == {"title": "Asha", "body": "hi there"}
    assert msg["android"]["collapse_key"] == f"chat-{order_id}"
    assert msg["data"]["orderId"] == order_id and msg["data"]["seq"] == "1" and msg["data"]["unread"] == "1"
    assert fcm.sent_to(client_token) == []  # the client watched the chat live

    # Not watching any more: the two attachments of the next messages fold into one push.
    watching.clear()
    await store_batch(
        pool,
        [
            Outgoing(order_id, doer.id, "", [Attachment(url="https://x/1")] * n, None, client.id)
            for n in (2, 3)
        ],
    )
    await worker.run_once()
    await _drain(worker, pool, [j["id"] for j in await pool.fetch("SELECT id FROM push_jobs")])
    (pushed,) = fcm.sent_to(client_token)
    assert pushed["notification"]["body"] == "Sent 3 attachments"
    assert pushed["data"]["seq"] == "5" and pushed["data"]["unread"] == "2"


async def test_batches_of_more_than_500_messages(
    pool: asyncpg.Pool, fcm: FakeFcm, push_worker: PushWorker, user_factory: Any
) -> None:
    user = await user_factory()
    tokens = [f"bulk-{i}-{user.id[:8]}" for i in range(520)]
    await pool.executemany(
        "INSERT INTO devices (token, user_id, platform) VALUES ($1, $2, 'android')",
        [(t, user.id) for t in tokens],
    )
    job = await _job(pool, user.id)
    await _drain(push_worker, pool, [job])
    assert {m["token"] for m in fcm.received} >= set(tokens)


async def test_pushes_arrive_over_http2_and_tls_on_one_reused_connection(
    pool: asyncpg.Pool, fcm: FakeFcm, push_worker: PushWorker, user_factory: Any
) -> None:
    user = await user_factory()
    tokens = [await add_device(pool, user) for _ in range(3)]
    for _ in range(2):  # two batches, one after the other
        await _drain(push_worker, pool, [await _job(pool, user.id)])
    assert fcm.url.startswith("https://")
    assert len(fcm.send_requests) == 2 * len(tokens)
    # The fake's FCM port negotiates only h2 by ALPN and counts each request's HTTP version.
    assert {version for version, _ in fcm.send_requests} == {"HTTP/2"}
    # Every message of both batches was a stream on the same TLS connection.
    assert fcm.connections == 1 and {connection for _, connection in fcm.send_requests} == {1}
    assert fcm.refused == 0


async def test_the_fake_fcm_refuses_a_client_without_http2(fcm: FakeFcm) -> None:
    async with httpx.AsyncClient(http2=False) as client:  # trusts the fake's CA (SSL_CERT_FILE)
        with pytest.raises(httpx.TransportError):
            await client.post(f"{fcm.url}/v1/projects/{PROJECT}/messages:send", json={})
    assert fcm.refused == 1 and fcm.send_requests == []


async def test_a_token_fcm_refuses_is_refreshed_before_the_next_batch(fcm: FakeFcm, sender: Any) -> None:
    message = PushMessage(token="tok-refresh", platform="android", title="Hi", body="there")
    assert [r.status for r in await sender.send([message])] == ["sent"]
    issued = fcm.token_requests
    fcm.tokens_issued.clear()  # FCM stops accepting the token the sender holds (revoked)
    assert [(r.status, r.reason) for r in await sender.send([message])] == [("retry", "UnauthenticatedError")]
    assert [r.status for r in await sender.send([message])] == ["sent"]
    assert fcm.token_requests == issued + 1
