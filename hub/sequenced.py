"""A sequenced channel: this process's view of one broker channel whose main events carry a gapless
seq stored in PostgreSQL. The same machinery serves an order's chat (`order:<id>`, CHAT_MESSAGE by
`seq`) and a user's feed (`user:<id>`, ORDER_UPDATE / NEW_APPLICATION / NOTIFICATION by `feedSeq`).

Delivery is in seq order: a frame that arrives ahead of a missing one waits, and the missing ones
are read back from PostgreSQL after GAP_WAIT_S (a lost publish) or at once after a broker reconnect
(`fill`). Frames without a seq (typing, read marks) go out as they come. A joining session is first
*replaying*: its live frames are buffered while it reads what it missed, then flushed without the
ones it already has, so there is no gap and no reordering. That buffer is bounded like the session's
queue: a joining session past it is closed with 1013 (reconnect and resume)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from hub import chat, feed
from hub.clock import now_ms
from hub.codes import TRY_AGAIN_LATER
from hub.frame import Frame
from hub.logs import outage
from hub.metrics import HubMetrics
from hub.session import SLOW, Session

log = logging.getLogger("gigwire.hub")

GAP_WAIT_S = 0.3  # how long an out-of-order frame waits for the missing ones before a DB read
FILL_RETRY_FIRST_S = 1.0  # a failed fill is tried again after this, doubling (with jitter) per failure
FILL_RETRY_MAX_S = 30.0
REPLAY_PAGE = 200
_TYPING = frozenset({"TYPING_START", "TYPING_STOP"})


class Source(Protocol):
    """Where a kind of sequenced channel keeps its history, and which frames are sequenced."""

    kind: str  # the channel prefix, e.g. "order"

    async def last_seq(self, pool: asyncpg.Pool, key: str) -> int: ...

    async def rows_after(
        self, pool: asyncpg.Pool, key: str, after: int, upto: int, limit: int
    ) -> list[asyncpg.Record]: ...

    def frame(self, row: asyncpg.Record) -> Frame: ...

    def seq(self, frame: Frame) -> int | None:
        """The frame's seq, None for a frame outside the sequence; raises on a malformed one."""
        ...

    def skip(self, frame: Frame) -> str | None:
        """A user whose sessions must not get this unsequenced frame (the typer of TYPING_*)."""
        ...


class ChatSource:
    """An order's chat: CHAT_MESSAGE by `seq` (messages, hub/chat.py)."""

    kind = "order"

    async def last_seq(self, pool: asyncpg.Pool, key: str) -> int:
        return await chat.last_seq(pool, key)

    async def rows_after(
        self, pool: asyncpg.Pool, key: str, after: int, upto: int, limit: int
    ) -> list[asyncpg.Record]:
        return await chat.messages_after(pool, key, after, upto, limit)

    def frame(self, row: asyncpg.Record) -> Frame:
        return chat.message_frame(row)

    def seq(self, frame: Frame) -> int | None:
        if frame.type != "CHAT_MESSAGE":
            return None
        return int(frame.payload["seq"])

    def skip(self, frame: Frame) -> str | None:
        if frame.type not in _TYPING:
            return None
        user = frame.payload.get("userId")
        return user if isinstance(user, str) else None


class FeedSource:
    """A user's feed: frames carrying `feedSeq` in their data (hub/feed.py)."""

    kind = "user"

    async def last_seq(self, pool: asyncpg.Pool, key: str) -> int:
        return await feed.last_seq(pool, key)

    async def rows_after(
        self, pool: asyncpg.Pool, key: str, after: int, upto: int, limit: int
    ) -> list[asyncpg.Record]:
        return await feed.entries_after(pool, key, after, upto, limit)

    def frame(self, row: asyncpg.Record) -> Frame:
        return feed.entry_frame(row)

    def seq(self, frame: Frame) -> int | None:
        value = frame.payload.get("feedSeq")
        return None if value is None else int(value)

    def skip(self, frame: Frame) -> str | None:
        return None


CHAT = ChatSource()
FEED = FeedSource()


@dataclass
class Replay:
    """A joining session's buffer; `upto` is the seq its replay covers, once read. `size` is the
    buffered frames' bytes."""

    frames: list[Frame] = field(default_factory=list)
    upto: int | None = None
    size: int = 0


class Host(Protocol):
    """What a channel needs from its hub."""

    metrics: HubMetrics

    @property
    def pool(self) -> asyncpg.Pool: ...

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]: ...

    @property
    def fill_gate(self) -> asyncio.Semaphore:
        """How many channels may read from PostgreSQL to fill at once (a broker reconnect asks every
        live channel at the same moment)."""
        ...

    def current(self, channel: SeqChannel) -> bool:
        """Whether `channel` is still the hub's channel for its key (not dropped)."""
        ...


Prelude = Callable[[int, int | None], Awaitable[int]]
"""Called in `replay` with (last seq, since) once the last seq is read: returns the seq to replay
after (the feed greets the session and decides whether `since` is still kept)."""


class SeqChannel:
    """This process's view of one sequenced channel. A joining session's buffer is bounded like a
    session's queue (`max_frames` frames, `max_bytes` bytes): past it the session is closed."""

    def __init__(self, host: Host, source: Source, key: str, max_frames: int, max_bytes: int) -> None:
        self.host = host
        self.source = source
        self.key = key
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.live: set[Session] = set()
        self.joining: dict[Session, Replay] = {}
        self.last: int | None = None  # seq of the last frame emitted; None until first read
        self.pending: dict[int, Frame] = {}
        self.gap_timer: asyncio.TimerHandle | None = None
        self.filling = False
        self.refill = False  # a fill was asked for while one ran: its target may be stale
        self.fill_failures = 0  # fills failed in a row: the next retry waits longer
        self.ready: asyncio.Future[None] | None = None  # resolved once the broker subscription is in place

    @property
    def name(self) -> str:
        return f"{self.source.kind}:{self.key}"

    @property
    def empty(self) -> bool:
        return not self.live and not self.joining

    # -- live frames -------------------------------------------------------------------------------

    def offer(self, frame: Frame) -> None:
        """A frame from the broker: emitted at once when unsequenced, else in seq order."""
        metrics = self.host.metrics
        try:
            seq = self.source.seq(frame)
            if seq is None:
                self.emit(frame, self.source.skip(frame))
                metrics.deliveries.inc(len(self.live))
                return
        except (ValueError, KeyError, TypeError):
            log.warning("undeliverable frame dropped", extra={"channel": self.name})
            return
        if self.source is CHAT:
            created = frame.payload.get("createdAt")
            if isinstance(created, int):
                metrics.latency.observe(max(0, now_ms() - created) / 1000)
        if self.last is None or seq > self.last + 1:
            self.pending[seq] = frame
            if self.last is not None:
                self.schedule_fill(GAP_WAIT_S)
            return
        if seq <= self.last:
            return  # a duplicate: already delivered (local fallback, gap fill, replay)
        self._emit_seq(frame, seq)
        self.drain()

    def emit(self, frame: Frame, skip_user: str | None = None) -> None:
        """Hand one frame to every live session (and each joining session's buffer). A joining
        session whose buffer would pass the bound is closed with 1013 and leaves the channel."""
        for session in self.live:
            if session.user_id != skip_user:
                session.push(frame)
        overflowed: list[Session] = []
        for session, replay in self.joining.items():
            if session.user_id == skip_user:
                continue
            if len(replay.frames) >= self.max_frames or replay.size + frame.size > self.max_bytes:
                overflowed.append(session)
                continue
            replay.frames.append(frame)
            replay.size += frame.size
        for session in overflowed:
            self._overflow(session)

    def _overflow(self, session: Session) -> None:
        """A joining session too slow to read its history while the channel is busy: dropped with
        its buffer and closed with 1013, like a session whose queue overflows. Its join sees it
        gone and returns; its removal from the hub follows the close."""
        del self.joining[session]
        session.metrics.queue_overflows.labels(session.transport).inc()
        log.info(
            "slow joining reader disconnected",
            extra={"userId": session.user_id, "session": session.session_id, "channel": self.name},
        )
        session.close(TRY_AGAIN_LATER, SLOW, flush=False)

    def _emit_seq(self, frame: Frame, seq: int) -> None:
        self.emit(frame)
        self.last = seq
        self.host.metrics.deliveries.inc(len(self.live))

    def drain(self) -> None:
        """Emit pending frames that are next in line; promote joining sessions caught up."""
        assert self.last is not None
        while (frame := self.pending.pop(self.last + 1, None)) is not None:
            self._emit_seq(frame, self.last + 1)
        for stale in [s for s in self.pending if s <= self.last]:
            del self.pending[stale]
        if not self.pending and self.gap_timer is not None:
            self.gap_timer.cancel()
            self.gap_timer = None
        self.promote()

    def promote(self) -> None:
        """Move joining sessions whose replay reaches the channel's position to live: flush each
        buffer without the frames its replay already sent."""
        if self.last is None:
            return
        ready = [(s, r) for s, r in self.joining.items() if r.upto is not None and r.upto <= self.last]
        for session, replay in ready:
            del self.joining[session]
            upto = replay.upto
            assert upto is not None
            for frame in replay.frames:
                seq = self.source.seq(frame)
                if seq is not None and seq <= upto:
                    continue
                session.push(frame)
            self.live.add(session)

    # -- filling from PostgreSQL -------------------------------------------------------------------

    def schedule_fill(self, delay: float) -> None:
        """Read what the channel misses from PostgreSQL after `delay` (at once for 0)."""
        if self.filling:
            self.refill = True
            return
        if self.gap_timer is not None:
            return

        def fire() -> None:
            self.gap_timer = None
            self.host.spawn(self.fill(), f"gigwire-gap-fill-{self.key}")

        self.gap_timer = asyncio.get_running_loop().call_later(delay, fire)

    async def fill(self) -> None:
        """Read the frames the channel misses from PostgreSQL and emit them in order."""
        host = self.host
        if not host.current(self):
            return
        if self.filling:
            self.refill = True
            return
        self.filling = True
        self.refill = False
        try:
            async with host.fill_gate:
                target = await self.source.last_seq(host.pool, self.key)
                while self.last is not None and self.last < target and host.current(self):
                    rows = await self.source.rows_after(host.pool, self.key, self.last, target, REPLAY_PAGE)
                    if not rows:
                        break
                    for row in rows:
                        if row["seq"] > self.last:
                            self.pending.setdefault(int(row["seq"]), self.source.frame(row))
                    host.metrics.gap_fills.inc(len(rows))
                    self.drain()
        except Exception as exc:
            self.fill_failures += 1
            # Backoff with jitter: after an outage every channel failed at once, and retrying them
            # all each second kept the pool exhausted (the soak's Redis restart under 2,000 sessions).
            delay = min(FILL_RETRY_MAX_S, FILL_RETRY_FIRST_S * 2 ** (self.fill_failures - 1))
            outage(log, "gap fill failed; retrying", channel=self.name, error=repr(exc))
            self.filling = False
            self.schedule_fill(delay * (0.5 + random.random()))
            return
        self.fill_failures = 0
        self.filling = False
        if self.refill:
            # Asked for again while this fill ran (a joining session, a reconnect): its target may
            # be past the one this fill read, so read again now.
            self.refill = False
            self.schedule_fill(0)
        elif self.pending:
            self.schedule_fill(GAP_WAIT_S)

    # -- joining -----------------------------------------------------------------------------------

    async def replay(
        self, session: Session, since: int | None, prelude: Prelude | None = None
    ) -> tuple[int, int]:
        """For a session already in `joining` with the broker subscription in place: read the last
        seq, send every frame after `since` (none when None; `prelude` may decide otherwise), then
        go live. Returns (last seq read, replayed)."""
        replay = self.joining[session]
        pool = self.host.pool
        last = await self.source.last_seq(pool, self.key)
        after = last if since is None else since
        if prelude is not None:
            after = await prelude(last, since)
        replayed = 0
        while after < last and not session.closing:
            rows = await self.source.rows_after(pool, self.key, after, last, REPLAY_PAGE)
            if not rows:
                break
            # Room is awaited frame by frame, in bytes too: one page of large frames can exceed
            # the byte bound on its own, and pushing it at once would cut the reader.
            for row in rows:
                frame = self.source.frame(row)
                await session.wait_room(1, frame.size)
                session.push(frame)
            replayed += len(rows)
            after = int(rows[-1]["seq"])
        if self.joining.get(session) is not replay:
            return last, replayed  # left meanwhile
        replay.upto = last
        if self.last is None:
            self.last = last
            self.drain()
        elif last > self.last:
            self.schedule_fill(0)  # the broker is behind PostgreSQL: catch up now
        self.promote()
        return last, replayed

    def cancel(self) -> None:
        """The channel is dropped: stop its timer."""
        if self.gap_timer is not None:
            self.gap_timer.cancel()
            self.gap_timer = None
