"""Presence: which users have a live session, and which orders they watch live, shared across
processes through the Store (Redis with a TTL when configured, so a crashed process's users go
offline within `presence_ttl` seconds; refreshed every third of it while connected).

Layout: one set per user, `presence:<userId>`, whose members are `<sessionId>` (online) and
`<sessionId>|<orderId>` (that session is subscribed live to the order's chat)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from hub.logs import outage
from hub.loops import supervise
from hub.store import Store

log = logging.getLogger("gigwire.presence")


class _Batch:
    """Presence members to write together, and the future their announcers wait on."""

    __slots__ = ("done", "entries")

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.entries: dict[str, list[str]] = {}


def presence_key(user_id: str) -> str:
    """The Store key of a user's presence set."""
    return f"presence:{user_id}"


def session_members(session_id: str, order_ids: Iterable[str]) -> list[str]:
    """The presence members one session holds: itself and one per subscribed order."""
    return [session_id, *(f"{session_id}|{o}" for o in order_ids)]


async def is_online(store: Store, user_id: str) -> bool:
    """True when the user has at least one live session on any process."""
    return any("|" not in m for m in await store.members(presence_key(user_id)))


async def watched_orders(store: Store, user_id: str) -> set[str]:
    """The orders whose chat the user is subscribed to live in some session right now (the push
    worker skips chat pushes for these: the user saw the message live)."""
    return {m.partition("|")[2] for m in await store.members(presence_key(user_id)) if "|" in m}


async def is_watching(store: Store, user_id: str, order_id: str) -> bool:
    """True when some live session of the user is subscribed to the order's chat."""
    return order_id in await watched_orders(store, user_id)


class Presence:
    """One process's writer of presence: announces sessions and subscriptions, refreshes them all
    periodically (`keep_fresh`), and withdraws them on close. Presence is advisory: a Store failure
    is logged and never fails a connection."""

    def __init__(self, store: Store, ttl_s: float) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._next: _Batch | None = None  # announces waiting for the write in flight to finish
        self._writer: asyncio.Task[None] | None = None

    async def announce(self, user_id: str, session_id: str, order_ids: Iterable[str] = ()) -> None:
        """Mark the session (and its subscriptions) live for one TTL; returns once written (or its
        failure logged). Announces made while a write is in flight go out together in the next one,
        so a burst of connects costs a few round trips, not one each."""
        batch = self._next
        if batch is None:
            batch = self._next = _Batch(asyncio.get_running_loop().create_future())
        batch.entries.setdefault(presence_key(user_id), []).extend(session_members(session_id, order_ids))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._write(), name="gigwire-presence-write"
            )
        await asyncio.shield(batch.done)

    async def _write(self) -> None:
        """Write batches one at a time until none is waiting."""
        batch: _Batch | None = None
        try:
            while (batch := self._next) is not None:
                self._next = None
                await self._safely(self.store.members_touch(batch.entries, self.ttl_s))
                batch.done.set_result(None)
        finally:
            self._writer = None
            for left in (batch, self._next):  # cancelled mid-write: nobody may wait forever
                if left is not None and not left.done.done():
                    left.done.cancel()
            self._next = None

    async def withdraw(self, user_id: str, session_id: str, order_ids: Iterable[str] = ()) -> None:
        """Remove the session's members now (a clean close)."""
        members = session_members(session_id, order_ids)
        await self._safely(self.store.members_remove(presence_key(user_id), members))

    async def withdraw_order(self, user_id: str, session_id: str, order_id: str) -> None:
        """Remove one subscription of a session (an unsubscribe)."""
        await self._safely(self.store.members_remove(presence_key(user_id), [f"{session_id}|{order_id}"]))

    async def refresh(self, sessions: Iterable[tuple[str, str, Iterable[str]]]) -> None:
        """Refresh (user_id, session_id, order_ids) of every local session in one round trip."""
        entries: dict[str, list[str]] = {}
        for user_id, session_id, order_ids in sessions:
            entries.setdefault(presence_key(user_id), []).extend(session_members(session_id, order_ids))
        await self._safely(self.store.members_touch(entries, self.ttl_s))

    async def keep_fresh(self, sessions: Callable[[], Iterable[tuple[str, str, Iterable[str]]]]) -> None:
        """Refresh `sessions()` every third of the TTL, until cancelled. A Store failure is logged by
        `refresh`; anything else (a failing `sessions()`) is logged and retried with backoff."""

        async def step() -> None:
            await asyncio.sleep(max(1.0, self.ttl_s / 3))
            await self.refresh(sessions())

        await supervise("presence", step, logger=log, message="presence refresh failed")

    async def _safely(self, operation: Awaitable[None]) -> None:
        try:
            await operation
        except Exception as exc:
            outage(log, "presence update failed", error=repr(exc))
