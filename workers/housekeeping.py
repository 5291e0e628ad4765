"""Housekeeping: deletes login codes, refresh tokens, Idempotency-Key records and user feed entries
that can no longer matter, so those tables stop growing without bound.

What goes, and why it is safe (the rules of rest/auth.py, rest/refresh.py, rest/idempotency.py):

- `otp_codes`: a row expired and sent more than `OTP_KEEP_S` (an hour) ago. An hour is the longest
  send throttle window (5 an hour per phone); the windows themselves are counted in the Store, so
  deleting the row never resets them, and a row past its expiry can only answer "expired", "used"
  or "too many tries" where its absence answers "no code": either way the client must send anew.
- `refresh_tokens`: every row of a family whose newest token expired more than `REFRESH_KEEP_S`
  (a day) ago. Reuse detection needs a family's rotated rows while any token of it can still be
  refreshed; once the newest has expired nothing of the family can be refreshed, and no new
  token can join it (a rotation needs a live token), so an unknown token is refused like an
  expired or revoked one. Rotated rows of a live family stay, however old.
- `idempotency_keys`: records created more than `idempotency_retention_s` ago (the setting
  IDEMPOTENCY_KEY_RETENTION_S, default 24 h): a repeat after that runs as a new request. A record
  still running (no answer) is reclaimable after 120 s anyway; past the retention its request died.
- `feed`: entries created more than `feed_retention_s` ago (FEED_RETENTION, default 7 days). A
  client resuming from before the oldest kept entry is told FEED_EXPIRED (GET /api/feed answers
  `expired`) and refetches state over REST; feed_sequences keeps each user's last feedSeq, so the
  numbering never restarts.

Each batch is one short transaction: `SELECT ctid ... LIMIT n FOR UPDATE SKIP LOCKED`, then
`DELETE ... WHERE ctid = ANY(...)` (a row we lock keeps its ctid until we commit). SKIP LOCKED
rather than an advisory lock: several worker processes share a large backlog batch by batch,
each row is deleted by exactly one of them, and a row a request holds at that moment (verify-otp's
FOR UPDATE, a refresh rotating its token, a key being claimed) is skipped, never waited on; a
request waits on the sweep for one small batch at most. The locked rows' conditions are checked
on their newest version, so a row a request renewed meanwhile (a new code, a reclaimed key) stays."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from hub.loops import sleep_or_stop
from workers.listen import supervise_worker
from workers.metrics import WorkerMetrics

log = logging.getLogger("gigwire.workers.housekeeping")

OTP_KEEP_S = 3600.0
"""An OTP row is kept this long after its send: the longest per-phone send throttle window."""
REFRESH_KEEP_S = 86400.0
"""A refresh-token family is kept this long after its newest token expired."""

# table -> the rows that can go; $1 is the batch size, $2 the age in seconds (see the docstring).
_DOOMED = {
    "otp_codes": "SELECT ctid FROM otp_codes"
    " WHERE expires_at < now() AND created_at < now() - make_interval(secs => $2)"
    " LIMIT $1 FOR UPDATE SKIP LOCKED",
    "refresh_tokens": "SELECT t.ctid FROM refresh_tokens t"
    " WHERE t.expires_at < now() - make_interval(secs => $2)"
    " AND NOT EXISTS (SELECT 1 FROM refresh_tokens f WHERE f.family_id = t.family_id"
    " AND f.expires_at >= now() - make_interval(secs => $2))"
    " LIMIT $1 FOR UPDATE OF t SKIP LOCKED",
    "idempotency_keys": "SELECT ctid FROM idempotency_keys"
    " WHERE created_at < now() - make_interval(secs => $2)"
    " LIMIT $1 FOR UPDATE SKIP LOCKED",
    "feed": "SELECT ctid FROM feed WHERE created_at < now() - make_interval(secs => $2)"
    " LIMIT $1 FOR UPDATE SKIP LOCKED",
}


class Housekeeping:
    """Deletes what can no longer matter from otp_codes, refresh_tokens, idempotency_keys and feed, in
    batches of `batch` rows, every `interval` seconds; any number may run side by side."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        metrics: WorkerMetrics,
        *,
        idempotency_retention_s: float = 86400.0,
        feed_retention_s: float = 7 * 86400.0,
        interval: float = 600.0,
        batch: int = 500,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._ages = {
            "otp_codes": OTP_KEEP_S,
            "refresh_tokens": REFRESH_KEEP_S,
            "idempotency_keys": idempotency_retention_s,
            "feed": feed_retention_s,
        }
        self.interval = interval
        self.batch = batch

    async def sweep(self, stopping: asyncio.Event | None = None) -> dict[str, int]:
        """Delete every row that can go, batch after batch until one comes back short (or
        `stopping` is set); return how many rows this sweep deleted per table. A table whose batch
        fails is logged, counted and left for the next sweep; the other tables are still swept."""
        deleted = dict.fromkeys(_DOOMED, 0)
        for table in _DOOMED:
            try:
                while stopping is None or not stopping.is_set():
                    locked, n = await self._delete_batch(table)
                    deleted[table] += n
                    if locked < self.batch:
                        break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._metrics.loop_errors.labels("housekeeping").inc()
                log.warning("housekeeping batch failed", extra={"table": table, "error": repr(exc)})
            if deleted[table]:
                log.info("housekeeping deleted rows", extra={"table": table, "rows": deleted[table]})
        return deleted

    async def _delete_batch(self, table: str) -> tuple[int, int]:
        """Lock up to `batch` rows that can go and delete them: (rows locked, rows deleted)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows: list[Any] = await conn.fetch(_DOOMED[table], self.batch, self._ages[table])
            if not rows:
                return 0, 0
            status = await conn.execute(
                f"DELETE FROM {table} WHERE ctid = ANY($1::tid[])", [r["ctid"] for r in rows]
            )
        n = int(status.split()[-1])  # "DELETE <n>"
        self._metrics.housekeeping_deleted.labels(table).inc(n)
        return len(rows), n

    async def run(self, stopping: asyncio.Event) -> None:
        """Sweep now and then every `interval` seconds until `stopping` is set; a failed sweep is
        logged, counted and tried again after a backoff from 1 s to 60 s."""

        async def step() -> None:
            await self.sweep(stopping)
            await sleep_or_stop(stopping, self.interval)

        await supervise_worker(
            "housekeeping", step, self._metrics, stopping, logger=log, message="housekeeping sweep failed"
        )
