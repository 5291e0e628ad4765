"""The Hub: this process's sessions per channel and the delivery of broker messages to them.

Channels: `user:<userId>` (a user's feed: every session of the user, joined on authentication) and
`order:<orderId>` (an order's chat, joined by SUBSCRIBE_CHAT). Both are sequenced channels
(hub/sequenced.py): chat messages by `seq`, feed events by `feedSeq`, delivered in order with gap
fill from PostgreSQL, refill after a broker reconnect, and joining sessions buffered while they
replay what they missed (`sinceSeq`, `sinceFeedSeq`). Control events on a user channel
(SESSION_REVOKED) are never sent to clients."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

import asyncpg

from hub import chat, conversations, feed, revoke
from hub.broker import Broker
from hub.chat_writer import ChatWriter
from hub.events import FeedExpired, Typing
from hub.frame import Frame
from hub.logs import outage
from hub.metrics import HubMetrics
from hub.presence import Presence
from hub.publisher import BatchPublisher
from hub.sequenced import CHAT, FEED, Prelude, Replay, SeqChannel, Source
from hub.session import Session, close_all
from hub.settings import Settings

log = logging.getLogger("gigwire.hub")

PARTICIPANTS_CACHED = 100_000  # orders whose participants a process remembers

K = TypeVar("K")
V = TypeVar("V")
OrderChannel = SeqChannel  # the name before the feed shared the machinery


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
        self.orders: dict[str, SeqChannel] = {}  # order id -> its chat channel
        self.feeds: dict[str, SeqChannel] = {}  # user id -> the user's feed channel
        self.accepting = True
        self.participants: Bounded[str, chat.Participants] = Bounded(PARTICIPANTS_CACHED)
        self.watchers = conversations.Watchers()  # who watches conversation lists anywhere
        self._refs: dict[str, int] = {}
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._removals: set[asyncio.Task[None]] = set()
        # A quarter of the pool at most for catching channels up, so that requests and joins still
        # get connections while every channel refills after a broker reconnect.
        self.fill_gate = asyncio.Semaphore(max(1, settings.database_pool_max // 4))
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
        self._publisher = BatchPublisher(broker, self.metrics.publish_failures.inc, self.deliver)
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
            outage(log, "publish failed; delivered locally only", channel=channel, error=repr(exc))
            self.deliver(channel, frame.data)

    def publish_soon(self, channel: str, frame: Frame) -> None:
        """`publish` without waiting for the broker (read marks, typing: the sender's answer and its
        next frames never wait on a stalled broker); a failed publish still reaches this process's
        sessions."""
        self.publisher.send(channel, frame.data, fallback=True)

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
            oc.offer(frame)

    # -- delivery --------------------------------------------------------------------------------

    def deliver(self, channel: str, data: bytes) -> None:
        """The broker's callback: hand one message to the channel's local sessions. Never awaits."""
        kind, _, key = channel.partition(":")
        if kind == "user":
            self.metrics.broker_messages.labels("user").inc()
            if revoke.intercept(self, key, data):  # SESSION_REVOKED: closes sessions, never forwarded
                return
            fc = self.feeds.get(key)
            if fc is not None:
                fc.offer(Frame(data))
        elif kind == conversations.KIND:
            self.metrics.broker_messages.labels(kind).inc()
            conversations.deliver(self, key, Frame(data))
        elif kind == conversations.WATCHERS:
            self.watchers.hear(data)
        elif kind == "order":
            self.metrics.broker_messages.labels("order").inc()
            oc = self.orders.get(key)
            if oc is not None:
                oc.offer(Frame(data))

    def feed_seq(self, user_id: str) -> int:
        """The last feedSeq this process delivered to the user's sessions (0 when none)."""
        fc = self.feeds.get(user_id)
        return fc.last or 0 if fc is not None else 0

    def current(self, channel: SeqChannel) -> bool:
        """Whether `channel` is still this hub's channel for its key (not dropped)."""
        channels = self.orders if channel.source is CHAT else self.feeds
        return channels.get(channel.key) is channel

    def _after_reconnect(self) -> None:
        """The broker lost messages while disconnected: catch every order channel and user feed up
        from PostgreSQL, from the last seq each delivered."""
        self.metrics.broker_reconnects.inc()
        self.watchers.unsure()
        for channel in [*self.orders.values(), *self.feeds.values()]:
            if channel.last is not None:
                self.spawn(channel.fill(), f"gigwire-catch-up-{channel.key}")

    # -- sessions ----------------------------------------------------------------------------------

    def _channel(self, source: Source, key: str) -> SeqChannel:
        """The channel of `source` for `key`, made when missing (not yet subscribed)."""
        channels = self.orders if source is CHAT else self.feeds
        channel = channels.get(key)
        if channel is None:
            settings = self.settings
            channel = SeqChannel(self, source, key, settings.ws_queue_max_frames, settings.ws_queue_max_bytes)
            channels[key] = channel
        return channel

    async def _enter(
        self, channel: SeqChannel, session: Session, since: int | None, prelude: Prelude | None
    ) -> tuple[bool, int, int]:
        """Join `session` to `channel` with replay from `since` (see SeqChannel.replay): the broker
        subscription first, then the history. Returns (still on the channel: it may have left or
        been closed meanwhile, last seq read, replayed); undoes the join on failure."""
        replay = channel.joining[session] = Replay()
        try:
            if channel.ready is None:
                channel.ready = asyncio.get_running_loop().create_future()
                try:
                    await self._join(channel.name)
                finally:
                    channel.ready.set_result(None)
            else:
                await asyncio.shield(channel.ready)
            if channel.joining.get(session) is not replay:
                return False, 0, 0
            last, replayed = await channel.replay(session, since, prelude)
        except BaseException:
            if channel.joining.get(session) is replay:
                del channel.joining[session]
            await self._drop_if_empty(channel)
            raise
        return channel.joining.get(session) is replay or session in channel.live, last, replayed

    async def add_session(
        self, session: Session, since: int | None = None, greet: Callable[[int], None] | None = None
    ) -> None:
        """Register an authenticated session and join it to its user's feed: `greet(feedSeq)` is
        called with the user's last feedSeq before any feed event reaches the session (it sends
        AUTHENTICATED). With `since`, every feed event after it is replayed first; when those are
        no longer kept (or `since` is ahead of the feed) the session gets FEED_EXPIRED instead and
        goes live from feedSeq."""
        self.sessions.add(session)
        self.metrics.connections.labels(session.transport).inc()
        self.users.setdefault(session.user_id, set()).add(session)
        user_id = session.user_id

        async def prelude(last: int, asked: int | None) -> int:
            if session not in self.sessions:
                return last
            if self.presence is not None:
                await self.presence.announce(user_id, session.session_id)
            if session not in self.sessions:
                return last
            if greet is not None:
                greet(last)
            if asked is None:
                return last
            if asked > last or not await feed.resumable(self.pool, user_id, asked, last):
                session.push(Frame.encode("FEED_EXPIRED", FeedExpired(asked, last)))
                return last
            return asked

        await self._enter(self._channel(FEED, user_id), session, since, prelude)

    async def remove_session(self, session: Session) -> None:
        """Forget a closed session: leave its orders and user feed, withdraw its presence."""
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
        await conversations.watch(self, session, False)
        fc = self.feeds.get(session.user_id)
        if fc is not None:
            fc.live.discard(session)
            fc.joining.pop(session, None)
            await self._drop_if_empty(fc)
        if self.presence is not None:
            await self.presence.withdraw(session.user_id, session.session_id, orders)

    async def subscribe(self, session: Session, order_id: str, since: int | None) -> tuple[int, int]:
        """Join the order's channel with replay: subscribe first, read the last seq, send every
        message after `since` (none when None), then go live. Returns (last seq read, replayed)."""
        oc = self._channel(CHAT, order_id)
        oc.live.discard(session)
        session.orders.add(order_id)
        try:
            joined, last, replayed = await self._enter(oc, session, since, None)
        except BaseException:
            session.orders.discard(order_id)
            raise
        if joined and self.presence is not None:
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

    async def listen(self, channel: str) -> None:
        """Subscribe this process to `channel` (reference-counted; `unlisten` to drop one)."""
        await self._join(channel)

    async def unlisten(self, channel: str) -> None:
        await self._leave(channel)

    async def _drop_if_empty(self, channel: SeqChannel) -> None:
        if channel.empty and self.current(channel):
            del (self.orders if channel.source is CHAT else self.feeds)[channel.key]
            channel.cancel()
            await self._leave(channel.name)

    def presence_entries(self) -> list[tuple[str, str, list[str]]]:
        """(user id, session id, subscribed order ids) of every local session, for the refresh."""
        return [(s.user_id, s.session_id, list(s.orders)) for s in self.sessions]
