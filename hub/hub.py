"""The Hub: this process's sessions per channel and the delivery of broker messages to them.

Channels: `user:<userId>` (every session of a user, joined on authentication) and `order:<orderId>`
(joined by SUBSCRIBE_CHAT). An order channel delivers chat messages in `seq` order: a message that
arrives ahead of a missing one waits, and the missing ones are read back from PostgreSQL after a
short delay (a lost publish) or at once after a broker reconnect. A joining session is first
*replaying*: its live frames are buffered while it reads what it missed, then flushed without
the ones it already has, so there is no gap and no reordering. That buffer is bounded like the
session's queue: a joining session past it is closed with 1013 (reconnect and resume with sinceSeq)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import asyncpg

from hub import chat, revoke
from hub.broker import Broker
from hub.chat_writer import ChatWriter
from hub.clock import now_ms
from hub.codes import TRY_AGAIN_LATER
from hub.events import Typing
from hub.frame import Frame
from hub.metrics import HubMetrics
from hub.presence import Presence
from hub.publisher import BatchPublisher
from hub.session import SLOW, Session, close_all
from hub.settings import Settings

log = logging.getLogger("gigwire.hub")

GAP_WAIT_S = 0.3  # how long an out-of-order chat message waits for the missing ones before a DB read
REPLAY_PAGE = 200
PARTICIPANTS_CACHED = 100_000  # orders whose participants a process remembers

K = TypeVar("K")
V = TypeVar("V")
_TYPING = frozenset({"TYPING_START", "TYPING_STOP"})


@dataclass
class Replay:
    """A joining session's buffer; `upto` is the seq its replay covers, once read. `size` is the
    buffered frames' bytes."""

    frames: list[Frame] = field(default_factory=list)
    upto: int | None = None
    size: int = 0


class OrderChannel:
    """This process's view of one order's chat channel. A joining session's buffer is bounded like
    a session's queue (`max_frames` frames, `max_bytes` bytes): past it the session is closed."""

    def __init__(self, order_id: str, max_frames: int, max_bytes: int) -> None:
        self.order_id = order_id
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.live: set[Session] = set()
        self.joining: dict[Session, Replay] = {}
        self.last: int | None = None  # seq of the last chat message emitted; None until first read
        self.pending: dict[int, Frame] = {}
        self.gap_timer: asyncio.TimerHandle | None = None
        self.filling = False
        self.refill = False  # a fill was asked for while one ran: its target may be stale
        self.ready: asyncio.Future[None] | None = None  # resolved once the broker subscription is in place

    @property
    def empty(self) -> bool:
        return not self.live and not self.joining

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
        its buffer and closed with 1013, like a session whose queue overflows. Its subscribe sees
        it gone and returns; its removal from the hub follows the close."""
        del self.joining[session]
        session.metrics.queue_overflows.labels(session.transport).inc()
        log.info(
            "slow joining reader disconnected",
            extra={"userId": session.user_id, "session": session.session_id, "orderId": self.order_id},
        )
        session.close(TRY_AGAIN_LATER, SLOW, flush=False)


class Bounded(Generic[K, V]):
    """A dict of at most `size` entries; past it the oldest inserted are dropped. For caching
    values that never change (an order's participants)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        items = self._items
        if key not in items and len(items) >= self.size:
            for old in list(itertools.islice(items, max(1, self.size // 8))):
                del items[old]
        items[key] = value


class Hub:
    """Local sessions per channel; `deliver` is the broker's callback. Start with `start()` once the
    pool, broker and store exist."""

    def __init__(self, settings: Settings, metrics: HubMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.sessions: set[Session] = set()
        self.users: dict[str, set[Session]] = {}
        self.orders: dict[str, OrderChannel] = {}
        self.accepting = True
        self.participants: Bounded[str, chat.Participants] = Bounded(PARTICIPANTS_CACHED)
        self._refs: dict[str, int] = {}
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._removals: set[asyncio.Task[None]] = set()
        self._pool: asyncpg.Pool | None = None
        self._broker: Broker | None = None
        self._writer: ChatWriter | None = None
        self._publisher: BatchPublisher | None = None
        self.presence: Presence | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, pool: asyncpg.Pool, broker: Broker, presence: Presence) -> None:
        """Attach the process's pool, broker and presence writer."""
        self._pool, self._broker, self.presence = pool, broker, presence
        self._writer = ChatWriter(pool)
        self._publisher = BatchPublisher(broker, self.metrics.publish_failures.inc)
        broker.on_reconnect(self._after_reconnect)

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "Hub.start() first"
        return self._pool

    @property
    def writer(self) -> ChatWriter:
        """Stores this process's chat messages in batches."""
        assert self._writer is not None, "Hub.start() first"
        return self._writer

    @property
    def publisher(self) -> BatchPublisher:
        """Publishes stored chat messages to the other processes in the background."""
        assert self._publisher is not None, "Hub.start() first"
        return self._publisher

    @property
    def broker(self) -> Broker:
        assert self._broker is not None, "Hub.start() first"
        return self._broker

    async def shutdown(self, grace_s: float = 5.0) -> None:
        """Stop accepting; close every session with 1001 after flushing its queue."""
        self.accepting = False
        await close_all(list(self.sessions), grace_s)

    async def stop(self, settle_s: float = 2.0) -> None:
        """Let pending session removals finish (within `settle_s`: they withdraw presence), then
        cancel background work (gap fills, presence refresh)."""
        if self._removals:
            await asyncio.wait(list(self._removals), timeout=settle_s)
        if self._publisher is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._publisher.drain(), settle_s)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, coro: object, name: str) -> asyncio.Task[None]:
        """Run a background coroutine, kept referenced until done, failures logged."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def forget(self, session: Session) -> None:
        """Remove a closed session in the background (for transports whose loss is a callback);
        `stop` lets these finish before cancelling the rest."""
        task = self.spawn(self.remove_session(session), "gigwire-remove-session")
        self._removals.add(task)
        task.add_done_callback(self._removals.discard)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("hub task failed", exc_info=task.exception(), extra={"task": task.get_name()})

    # -- broker channels -------------------------------------------------------------------------

    async def _join(self, channel: str) -> None:
        """Reference-count `channel` locally; the first reference subscribes the broker, and every
        caller returns only once the broker subscription is in place."""
        count = self._refs.get(channel, 0)
        self._refs[channel] = count + 1
        if count == 0:
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._ready[channel] = ready
            try:
                await self.broker.subscribe(channel)
            finally:
                if not ready.done():
                    ready.set_result(None)
                if self._ready.get(channel) is ready:
                    del self._ready[channel]
        elif (pending := self._ready.get(channel)) is not None:
            await asyncio.shield(pending)

    async def _leave(self, channel: str) -> None:
        count = self._refs.get(channel, 0)
        if count <= 1:
            self._refs.pop(channel, None)
            if count == 1:
                with contextlib.suppress(Exception):
                    await self.broker.unsubscribe(channel)
        else:
            self._refs[channel] = count - 1

    async def publish(self, channel: str, frame: Frame) -> None:
        """Publish to every process; if the broker fails, deliver to this process's sessions at least
        (the other processes' sessions heal through sinceSeq replay or the gap fill)."""
        try:
            await self.broker.publish(channel, frame.data)
        except Exception as exc:
            self.metrics.publish_failures.inc()
            log.warning(
                "publish failed; delivered locally only", extra={"channel": channel, "error": repr(exc)}
            )
            self.deliver(channel, frame.data)

    def send_chat(self, order_id: str, frame: Frame) -> None:
        """A stored chat message: to this process's subscribers right after the sender's ACK (at the
        loop's next turn: the ACK is pushed when the handler returns), to the other processes in the
        background (hub/publisher.py); never awaits. Its copy coming back from the broker is a seq
        already delivered, dropped."""
        asyncio.get_running_loop().call_soon(self._feed_local, order_id, frame)
        self.publisher.send(f"order:{order_id}", frame.data)

    def _feed_local(self, order_id: str, frame: Frame) -> None:
        oc = self.orders.get(order_id)
        if oc is not None:
            self._feed(oc, frame)

    # -- delivery --------------------------------------------------------------------------------

    def deliver(self, channel: str, data: bytes) -> None:
        """The broker's callback: hand one message to the channel's local sessions. Never awaits."""
        kind, _, key = channel.partition(":")
        if kind == "user":
            self.metrics.broker_messages.labels("user").inc()
            if revoke.intercept(self, key, data):  # SESSION_REVOKED: closes sessions, never forwarded
                return
            sessions = self.users.get(key)
            if sessions:
                frame = Frame(data)
                for session in sessions:
                    session.push(frame)
                self.metrics.deliveries.inc(len(sessions))
        elif kind == "order":
            self.metrics.broker_messages.labels("order").inc()
            oc = self.orders.get(key)
            if oc is not None:
                self._feed(oc, Frame(data))

    def _feed(self, oc: OrderChannel, frame: Frame) -> None:
        try:
            kind = frame.type
            if kind != "CHAT_MESSAGE":
                skip = frame.payload.get("userId") if kind in _TYPING else None
                oc.emit(frame, skip if isinstance(skip, str) else None)
                self.metrics.deliveries.inc(len(oc.live))
                return
            payload = frame.payload
            seq = int(payload["seq"])
        except (ValueError, KeyError, TypeError):
            log.warning("undeliverable order frame dropped", extra={"orderId": oc.order_id})
            return
        created = payload.get("createdAt")
        if isinstance(created, int):
            self.metrics.latency.observe(max(0, now_ms() - created) / 1000)
        if oc.last is None or seq > oc.last + 1:
            oc.pending[seq] = frame
            if oc.last is not None:
                self._schedule_fill(oc, GAP_WAIT_S)
            return
        if seq <= oc.last:
            return  # a duplicate: already delivered (local fallback, gap fill, replay)
        self._emit_chat(oc, frame, seq)
        self._drain(oc)

    def _emit_chat(self, oc: OrderChannel, frame: Frame, seq: int) -> None:
        oc.emit(frame)
        oc.last = seq
        self.metrics.deliveries.inc(len(oc.live))

    def _drain(self, oc: OrderChannel) -> None:
        """Emit pending messages that are next in line; promote joining sessions caught up."""
        assert oc.last is not None
        while (frame := oc.pending.pop(oc.last + 1, None)) is not None:
            self._emit_chat(oc, frame, oc.last + 1)
        for stale in [s for s in oc.pending if s <= oc.last]:
            del oc.pending[stale]
        if not oc.pending and oc.gap_timer is not None:
            oc.gap_timer.cancel()
            oc.gap_timer = None
        self._promote(oc)

    def _promote(self, oc: OrderChannel) -> None:
        """Move joining sessions whose replay reaches the channel's position to live: flush each
        buffer without the messages its replay already sent."""
        if oc.last is None:
            return
        ready = [(s, r) for s, r in oc.joining.items() if r.upto is not None and r.upto <= oc.last]
        for session, replay in ready:
            del oc.joining[session]
            upto = replay.upto
            assert upto is not None
            for frame in replay.frames:
                if frame.type == "CHAT_MESSAGE" and int(frame.payload["seq"]) <= upto:
                    continue
                session.push(frame)
            oc.live.add(session)

    def _schedule_fill(self, oc: OrderChannel, delay: float) -> None:
        if oc.filling:
            oc.refill = True
            return
        if oc.gap_timer is not None:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            oc.gap_timer = None
            self.spawn(self._fill(oc), f"gigwire-gap-fill-{oc.order_id}")

        oc.gap_timer = loop.call_later(delay, fire)

    async def _fill(self, oc: OrderChannel) -> None:
        """Read the messages the channel misses from PostgreSQL and emit them in order."""
        if self.orders.get(oc.order_id) is not oc:
            return
        if oc.filling:
            oc.refill = True
            return
        oc.filling = True
        oc.refill = False
        try:
            target = await chat.last_seq(self.pool, oc.order_id)
            while oc.last is not None and oc.last < target and self.orders.get(oc.order_id) is oc:
                rows = await chat.messages_after(self.pool, oc.order_id, oc.last, target, REPLAY_PAGE)
                if not rows:
                    break
                for row in rows:
                    if row["seq"] > oc.last:
                        oc.pending.setdefault(int(row["seq"]), chat.message_frame(row))
                self.metrics.gap_fills.inc(len(rows))
                self._drain(oc)
        except Exception as exc:
            log.warning("gap fill failed; retrying", extra={"orderId": oc.order_id, "error": repr(exc)})
            oc.filling = False
            self._schedule_fill(oc, 1.0)
            return
        oc.filling = False
        if oc.refill:
            # Asked for again while this fill ran (a joining subscriber, a reconnect): its target
            # may be past the one this fill read, so read again now.
            oc.refill = False
            self._schedule_fill(oc, 0)
        elif oc.pending:
            self._schedule_fill(oc, GAP_WAIT_S)

    def _after_reconnect(self) -> None:
        """The broker lost messages while disconnected: catch every order channel up from PostgreSQL."""
        self.metrics.broker_reconnects.inc()
        for oc in list(self.orders.values()):
            if oc.last is not None:
                self.spawn(self._fill(oc), f"gigwire-catch-up-{oc.order_id}")

    # -- sessions ----------------------------------------------------------------------------------

    async def add_session(self, session: Session) -> None:
        """Register an authenticated session: join its user channel (subscribed before returning)."""
        self.sessions.add(session)
        self.metrics.connections.labels(session.transport).inc()
        await self._join(f"user:{session.user_id}")
        if self.presence is not None and session in self.sessions:
            await self.presence.announce(session.user_id, session.session_id)
        if session not in self.sessions:
            # Closed (and removed) while we awaited: registering it now would leak it.
            return
        # Last, with no await after it: the caller pushes AUTHENTICATED at once, so no event of the
        # user's feed can reach the session ahead of it.
        self.users.setdefault(session.user_id, set()).add(session)

    async def remove_session(self, session: Session) -> None:
        """Forget a closed session: leave its orders and user channel, withdraw its presence."""
        if session not in self.sessions:
            return
        self.sessions.discard(session)
        self.metrics.connections.labels(session.transport).dec()
        orders = list(session.orders)
        for order_id in orders:
            await self.unsubscribe(session, order_id, announce=False)
        users = self.users.get(session.user_id)
        if users is not None:
            users.discard(session)
            if not users:
                del self.users[session.user_id]
        await self._leave(f"user:{session.user_id}")
        if self.presence is not None:
            await self.presence.withdraw(session.user_id, session.session_id, orders)

    async def subscribe(self, session: Session, order_id: str, since: int | None) -> tuple[int, int]:
        """Join the order's channel with replay: subscribe first, read the last seq, send every
        message after `since` (none when None), then go live. Returns (last seq read, replayed)."""
        oc = self.orders.get(order_id)
        if oc is None:
            settings = self.settings
            oc = OrderChannel(order_id, settings.ws_queue_max_frames, settings.ws_queue_max_bytes)
            self.orders[order_id] = oc
        oc.live.discard(session)
        replay = oc.joining[session] = Replay()
        session.orders.add(order_id)
        try:
            if oc.ready is None:
                oc.ready = asyncio.get_running_loop().create_future()
                try:
                    await self._join(f"order:{order_id}")
                finally:
                    oc.ready.set_result(None)
            else:
                await asyncio.shield(oc.ready)
            last = await chat.last_seq(self.pool, order_id)
            replayed = 0
            after = last if since is None else since
            while after < last and not session.closing:
                rows = await chat.messages_after(self.pool, order_id, after, last, REPLAY_PAGE)
                if not rows:
                    break
                # Room is awaited frame by frame, in bytes too: one page of large messages can
                # exceed the byte bound on its own, and pushing it at once would cut the reader.
                for row in rows:
                    frame = chat.message_frame(row)
                    await session.wait_room(1, frame.size)
                    session.push(frame)
                replayed += len(rows)
                after = int(rows[-1]["seq"])
        except BaseException:
            if oc.joining.get(session) is replay:
                del oc.joining[session]
            session.orders.discard(order_id)
            await self._drop_if_empty(oc)
            raise
        if oc.joining.get(session) is not replay:
            return last, replayed  # unsubscribed meanwhile
        replay.upto = last
        if oc.last is None:
            oc.last = last
            self._drain(oc)
        elif last > oc.last:
            self._schedule_fill(oc, 0)  # the broker is behind PostgreSQL: catch up now
        self._promote(oc)
        if self.presence is not None:
            await self.presence.announce(session.user_id, session.session_id, [order_id])
        return last, replayed

    async def unsubscribe(self, session: Session, order_id: str, announce: bool = True) -> None:
        """Leave the order's channel (no-op when not subscribed); ends the session's typing there."""
        handle = session.typing.pop(order_id, None)
        session.typing_sent.pop(order_id, None)
        if handle is not None:
            handle.cancel()
            await self.publish(
                f"order:{order_id}",
                Frame.encode("TYPING_STOP", Typing(order_id, session.user_id)),
            )
        if order_id not in session.orders:
            return
        session.orders.discard(order_id)
        oc = self.orders.get(order_id)
        if oc is not None:
            oc.live.discard(session)
            oc.joining.pop(session, None)
            await self._drop_if_empty(oc)
        if announce and self.presence is not None:
            await self.presence.withdraw_order(session.user_id, session.session_id, order_id)

    async def _drop_if_empty(self, oc: OrderChannel) -> None:
        if oc.empty and self.orders.get(oc.order_id) is oc:
            del self.orders[oc.order_id]
            if oc.gap_timer is not None:
                oc.gap_timer.cancel()
            await self._leave(f"order:{oc.order_id}")

    def presence_entries(self) -> list[tuple[str, str, list[str]]]:
        """(user id, session id, subscribed order ids) of every local session, for the refresh."""
        return [(s.user_id, s.session_id, list(s.orders)) for s in self.sessions]
