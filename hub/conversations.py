"""The live side of conversation lists: CONVERSATION_UPDATED, a small signal that a chat got a
message, for the sessions that asked for it (WATCH_CONVERSATIONS) and are not subscribed to that
chat (a subscribed session already gets the CHAT_MESSAGE itself, from which it updates its list).

The sender's process publishes the signal on `convo:<userId>` for each participant, in the
background pipeline that carries the chat message (hub/handlers.py). Only a process with a watching
session of that user listens there (Hub.watch, reference-counted like every channel), so no process
decodes a signal nobody watches. And the sender's process publishes it at all only when it has heard
that some process watches that user: every process announces the users it has watching sessions
for on `convo-watchers` (at once when a user's first session there starts watching, then all of
them every WATCH_TTL_S / 3), and each process keeps what it heard for WATCH_TTL_S. A process that
may have missed announcements (just started, or after a broker reconnect) publishes every signal
for WATCH_TTL_S. So while nobody watches, a message costs no extra publish.

Signals are best effort: not stored, not replayed, no feedSeq; a message sent in the instant between
a watch's start and its announcement reaching the sender's process gets no signal. A client that
reconnects refetches GET /api/conversations."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

import orjson

from hub.frame import Frame

if TYPE_CHECKING:
    from hub.hub import Hub
    from hub.session import Session

log = logging.getLogger("gigwire.conversations")

KIND: Final = "convo"
EVENT: Final = "CONVERSATION_UPDATED"
WATCHERS: Final = "convo-watchers"
"""The control channel of watch announcements: `{"userIds": [...]}`, never sent to a client."""
WATCH_TTL_S: Final = 60.0
ANNOUNCE_CHUNK: Final = 1000


def channel(user_id: str) -> str:
    """The broker channel of a user's conversation signals."""
    return f"{KIND}:{user_id}"


def deliver(hub: Hub, user_id: str, frame: Frame) -> None:
    """A signal from `convo:<user_id>`: pushed to the user's local sessions that watch and are not
    subscribed to its chat. Never awaits."""
    sessions = hub.users.get(user_id)
    if not sessions or frame.type != EVENT:
        return
    chat_id = frame.payload.get("orderId")
    for session in sessions:
        if session.conversations and chat_id not in session.orders:
            session.push(frame)


def announcement(user_ids: Iterable[str]) -> bytes:
    """The `convo-watchers` message naming `user_ids` as watched."""
    return orjson.dumps({"userIds": list(user_ids)})


class Watchers:
    """The users some process has a watching session for, as far as this process has heard."""

    def __init__(self, ttl: float = WATCH_TTL_S) -> None:
        self.ttl = ttl
        self.heard: dict[str, float] = {}  # user id -> monotonic time the news expires
        self.unsure_until = time.monotonic() + ttl  # may have missed announcements until then

    def wanted(self, user_id: str) -> bool:
        """Whether a signal for `user_id` may have a watcher: publish it."""
        now = time.monotonic()
        return now < self.unsure_until or self.heard.get(user_id, 0.0) > now

    def unsure(self) -> None:
        """Announcements may have been lost (the broker reconnected): publish everything a while."""
        self.unsure_until = time.monotonic() + self.ttl

    def hear(self, data: bytes) -> None:
        """A `convo-watchers` message; a malformed one is ignored."""
        try:
            users = orjson.loads(data).get("userIds")
        except (orjson.JSONDecodeError, AttributeError):
            return
        if not isinstance(users, list):
            return
        now = time.monotonic()
        if len(self.heard) > 4 * len(users) + 10_000:  # drop expired news now and then
            self.heard = {u: t for u, t in self.heard.items() if t > now}
        expires = now + self.ttl
        for user in users:
            if isinstance(user, str):
                self.heard[user] = expires


def local_watchers(hub: Hub) -> list[str]:
    """The users with a watching session on this process."""
    return sorted({s.user_id for s in hub.sessions if s.conversations})


async def watch(hub: Hub, session: Session, on: bool) -> None:
    """Start or stop the session's CONVERSATION_UPDATED: its process listens on the user's `convo:`
    channel while one of the user's sessions there watches, and announces the first."""
    if on == session.conversations:
        return
    session.conversations = on
    if not on:
        await hub.unlisten(channel(session.user_id))
        return
    first = not any(s.conversations for s in hub.users.get(session.user_id, ()) if s is not session)
    await hub.listen(channel(session.user_id))
    if first:
        await announce(hub, [session.user_id])


async def announce(hub: Hub, user_ids: list[str]) -> None:
    """Tell every process (this one too) that `user_ids` have watching sessions here."""
    for i in range(0, len(user_ids), ANNOUNCE_CHUNK):
        await hub.publish(WATCHERS, Frame(announcement(user_ids[i : i + ANNOUNCE_CHUNK])))


async def keep_announcing(hub: Hub) -> None:
    """Listen on `convo-watchers`, then announce this process's watched users every ttl / 3."""
    while True:
        try:
            await hub.listen(WATCHERS)
            break
        except Exception as exc:  # the broker is not there yet: signals go to everyone meanwhile
            log.warning("cannot listen for watch announcements; retrying", extra={"error": repr(exc)})
            hub.watchers.unsure()
            await asyncio.sleep(1.0)
    while True:
        await asyncio.sleep(hub.watchers.ttl / 3)
        try:
            await announce(hub, local_watchers(hub))
        except Exception as exc:  # the next round tries again; until then signals may be missed
            log.warning("watch announcement failed", extra={"error": repr(exc)})
