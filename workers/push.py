"""The push sender: turns due push jobs into FCM messages, with durable retries.

A batch of due jobs is claimed with FOR UPDATE SKIP LOCKED and sent while the claim is held, so
side-by-side senders never send the same job; a sender killed mid-batch releases its claim and
another sends that batch again (at least once; duplicates bounded by one batch). Nothing sleeps
while holding a claim: a retry is a new `next_attempt_at`, with exponential backoff and jitter,
never sooner than FCM's retry-after. Per job and device: sent (done), dead token (device deleted),
transient failure (retried, only those devices), after the last try a dead letter. Nothing is
pushed against the user's preference, and a chat push is dropped when the recipient has a live
session subscribed to that order's chat; when they have none, the message also becomes an inbox
row and a live NOTIFICATION (domain/notices.chat_messages, as their chat_message preference allows),
written once: on the job's first claim, in the claim's transaction. Chat jobs come from the waiting
chat pushes that storing messages leaves (workers/chat_push.py), taken at the start of each batch."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from domain import notices
from hub.store import Store
from workers import chat_push
from workers.fcm import PushMessage, PushSender, SendResult
from workers.listen import batch_step, supervise_worker
from workers.metrics import WorkerMetrics

if TYPE_CHECKING:
    from hub.db import Conn

log = logging.getLogger("gigwire.workers.push")

SeenLive = chat_push.SeenLive

_CLAIM = (
    "SELECT j.*, coalesce(p.push, true) AS wanted FROM push_jobs j"
    " LEFT JOIN notification_preferences p ON p.user_id = j.user_id AND p.type = j.type"
    " WHERE j.next_attempt_at <= now() ORDER BY j.next_attempt_at, j.id LIMIT $1"
    " FOR UPDATE OF j SKIP LOCKED"
)


def presence_seen_live(store: Store) -> SeenLive:
    """The hub's presence (hub/presence.py) as the push sender's chat check."""
    from hub.presence import is_watching

    async def seen(user_id: str, order_id: str) -> bool:
        return await is_watching(store, user_id, order_id)

    return seen


@dataclass
class _Outcome:
    sent: int = 0
    retry: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    retry_after: float = 0.0
    errors: list[str] = field(default_factory=list)


class PushWorker:
    """Sends due push jobs through a PushSender; one instance per worker process."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        sender: PushSender,
        metrics: WorkerMetrics,
        *,
        seen_live: SeenLive | None = None,
        max_attempts: int = 8,
        batch_size: int = 500,
        base_delay: float = 1.0,
        max_delay: float = 600.0,
        # Chat pushes wake nothing (storing a batch sends no NOTIFY: 0025_chat_push_in_statement.sql),
        # so this is also how soon a waiting chat push becomes a job.
        poll_interval: float = 0.5,
        recover_check_interval: float = 10.0,
    ) -> None:
        self._pool = pool
        self._sender = sender
        self._metrics = metrics
        self._seen_live = seen_live
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.poll_interval = poll_interval
        self.recover_check_interval = recover_check_interval
        self._recover_check_at = 0.0

    def backoff(self, attempts: int, retry_after: float) -> float:
        """Seconds before try number `attempts + 1`: exponential with jitter, at least retry-after."""
        delay = min(self.max_delay, self.base_delay * 2 ** max(0, attempts - 1))
        return float(max(delay * (0.5 + random.random() / 2), retry_after))

    async def run_once(self) -> int:
        """Turn waiting chat pushes into jobs (workers/chat_push.py), then claim and handle one
        batch of due jobs; return how many rows of either it handled."""
        if time.monotonic() >= self._recover_check_at:
            self._recover_check_at = time.monotonic() + self.recover_check_interval
            recovered = await chat_push.recover(self._pool)
            if recovered:
                log.warning(
                    "chat pushes queued again after PostgreSQL's crash recovery", extra={"chats": recovered}
                )
        async with self._pool.acquire() as conn, conn.transaction():
            promoted = await chat_push.promote(conn, self.batch_size, self._seen_live, self._metrics)
        return promoted + await self._send_due()

    async def _send_due(self) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            jobs = await conn.fetch(_CLAIM, self.batch_size)
            if not jobs:
                return 0
            done: list[int] = []
            sendable: list[asyncpg.Record] = []
            noticed: list[asyncpg.Record] = []
            for job in jobs:
                chat = job["type"] == "chat_message" and job["order_id"] is not None
                watching = chat and await self._watching(job)
                if chat and not watching and job["attempts"] == 0:
                    noticed.append(job)
                if not job["wanted"]:
                    self._metrics.push_skipped.labels("preference").inc()
                    done.append(job["id"])
                elif watching:
                    self._metrics.push_skipped.labels("seen_live").inc()
                    done.append(job["id"])
                else:
                    sendable.append(job)
            await notices.chat_messages(conn, noticed)
            devices = await conn.fetch(
                "SELECT token, platform, user_id FROM devices WHERE user_id = ANY($1::uuid[])",
                list({j["user_id"] for j in sendable}),
            )
            by_user: dict[Any, list[asyncpg.Record]] = {}
            for d in devices:
                by_user.setdefault(d["user_id"], []).append(d)
            messages: list[PushMessage] = []
            owners: list[int] = []
            for index, job in enumerate(sendable):
                owed = set(job["tokens"]) if job["tokens"] is not None else None
                targets = [d for d in by_user.get(job["user_id"], []) if owed is None or d["token"] in owed]
                for d in targets:
                    messages.append(self._message(job, d["token"], d["platform"]))
                    owners.append(index)
                if not targets:
                    self._metrics.push_skipped.labels("no_device").inc()
                    done.append(job["id"])
            results = await self._sender.send(messages) if messages else []
            outcomes = await self._apply(conn, messages, owners, results, len(sendable))
            for index, job in enumerate(sendable):
                outcome = outcomes[index]
                if job["id"] in done:
                    continue
                if not outcome.retry and not outcome.failed:
                    done.append(job["id"])
                    continue
                await self._reschedule(conn, job, outcome)
            if done:
                await conn.execute("DELETE FROM push_jobs WHERE id = ANY($1::bigint[])", done)
        return len(jobs)

    async def _watching(self, job: asyncpg.Record) -> bool:
        """Whether the chat job's recipient watches that order's chat live right now."""
        if self._seen_live is None:
            return False
        return await self._seen_live(str(job["user_id"]), str(job["order_id"]))

    def _message(self, job: asyncpg.Record, token: str, platform: str) -> PushMessage:
        return PushMessage(
            token=token,
            platform=platform,
            title=job["title"],
            body=job["body"],
            data={str(k): str(v) for k, v in dict(job["data"]).items()},
            collapse_key=job["collapse_key"],
            priority="normal" if job["priority"] == "normal" else "high",
        )

    async def _apply(
        self,
        conn: Conn,
        messages: list[PushMessage],
        owners: list[int],
        results: list[SendResult],
        jobs: int,
    ) -> list[_Outcome]:
        """Tally results per job; delete the devices FCM called dead."""
        outcomes = [_Outcome() for _ in range(jobs)]
        dead: dict[str, str] = {}
        for message, owner, result in zip(messages, owners, results, strict=True):
            outcome = outcomes[owner]
            if result.status == "sent":
                outcome.sent += 1
                self._metrics.push_sent.inc()
            elif result.status == "prune":
                dead[message.token] = result.reason
                self._metrics.push_pruned.labels(result.reason).inc()
            elif result.status == "retry":
                outcome.retry.append(message.token)
                outcome.retry_after = max(outcome.retry_after, result.retry_after or 0.0)
                outcome.errors.append(result.reason)
            else:
                outcome.failed.append(message.token)
                outcome.errors.append(result.reason)
        if dead:
            await conn.execute("DELETE FROM devices WHERE token = ANY($1::text[])", list(dead))
            reasons = sorted(set(dead.values()))
            log.info("pruned device tokens", extra={"count": len(dead), "reasons": reasons})
        return outcomes

    async def _reschedule(self, conn: Conn, job: asyncpg.Record, outcome: _Outcome) -> None:
        """Retry the devices still owed, or dead-letter them after the last try (failed devices at once)."""
        attempts = job["attempts"] + 1
        error = "; ".join(sorted(set(outcome.errors)))[:1000]
        if outcome.failed:
            await self._dead_letter(conn, job, outcome.failed, attempts, error)
        if not outcome.retry:
            await conn.execute("DELETE FROM push_jobs WHERE id = $1", job["id"])
            return
        if attempts >= self.max_attempts:
            await self._dead_letter(conn, job, outcome.retry, attempts, error)
            await conn.execute("DELETE FROM push_jobs WHERE id = $1", job["id"])
            return
        delay = self.backoff(attempts, outcome.retry_after)
        for reason in outcome.errors:
            self._metrics.push_retried.labels(reason).inc()
        await conn.execute(
            "UPDATE push_jobs SET tokens = $2, attempts = $3, last_error = $4,"
            " next_attempt_at = now() + make_interval(secs => $5) WHERE id = $1",
            job["id"],
            outcome.retry,
            attempts,
            error,
            delay,
        )

    async def _dead_letter(
        self, conn: Conn, job: asyncpg.Record, tokens: list[str], attempts: int, error: str
    ) -> None:
        await conn.execute(
            "INSERT INTO push_dead_letters (job_id, user_id, type, title, body, data, collapse_key, tokens,"
            " attempts, error, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            job["id"],
            job["user_id"],
            job["type"],
            job["title"],
            job["body"],
            job["data"],
            job["collapse_key"],
            tokens,
            attempts,
            error or "failed",
            job["created_at"],
        )
        self._metrics.push_dead_lettered.inc()
        log.warning(
            "push dead-lettered",
            extra={"jobId": job["id"], "tokens": len(tokens), "attempts": attempts, "error": error},
        )

    async def run(self, wake: asyncio.Event, stopping: asyncio.Event) -> None:
        """Send until `stopping` is set: a full batch goes straight on; otherwise wait for `wake`
        (NOTIFY from a new notification job) or the poll interval, which also picks up waiting chat
        pushes and retries coming due."""
        step = batch_step(self.run_once, self.batch_size, wake, stopping, self.poll_interval)
        await supervise_worker(
            "push", step, self._metrics, stopping, logger=log, message="push batch failed; retrying"
        )
