"""What each client event does once its frame is valid and its session authenticated: the chat
events (subscribe with replay, send, read marks, typing) and PING. Transport-independent: the raw
WebSocket and the Socket.IO transports both call `handle`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from msgspec import Struct

from hub import chat, conversations, media_refs, threads
from hub.db import DatabaseUnavailable
from hub.events import (
    PREVIEW,
    Attachment,
    ChatAck,
    ChatMessage,
    ChatSend,
    ConversationUpdated,
    MessageRead,
    OrderAck,
    OrderRef,
    ReadAck,
    ReadReceipt,
    SubscribeAck,
    SubscribeChat,
    Typing,
    WatchAck,
    WatchConversations,
    to_wire,
)
from hub.frame import Frame
from hub.hub import Hub
from hub.logs import outage
from hub.protocol import ClientFrame, HubError
from hub.session import Session

log = logging.getLogger("gigwire.chat")

TYPING_TTL_S = 6.0  # a TYPING_START not renewed within this ends with a server TYPING_STOP
TYPING_RELAY_EVERY_S = 3.0  # renewals within this are not relayed again (the throttle)

Ack = dict[str, Any] | None


async def handle(hub: Hub, session: Session, frame: ClientFrame) -> Ack:
    """Run one authenticated client frame. Returns the ACK data (None: nothing to acknowledge, or
    already answered, as PING is by PONG), typed by hub.events.ACKS and handed to the transports
    as plain JSON values. Raises HubError with the code to answer."""
    if frame.type == "PING":  # answered by PONG, which carries the ref
        session.push(Frame.encode("PONG", None, frame.ref))
        return None
    try:
        ack = await _HANDLERS[frame.type](hub, session, frame.data)
        return None if ack is None else to_wire(ack)
    except HubError:
        raise
    except UNAVAILABLE as exc:
        outage(log, "chat event failed", type=frame.type, error=repr(exc))
        busy = isinstance(exc, DatabaseUnavailable)
        raise HubError("internal", failure_message(frame.type, busy)) from None


UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    OSError,
    asyncpg.InterfaceError,
    # "cannot switch to state ...; another operation is in progress": asyncpg's view of a pooled
    # connection whose server went away mid-operation (seen while PostgreSQL restarts or refuses:
    # tests/faults/test_sigterm_faults.py, tests/hub/test_pool_limits.py); the pool closes it on
    # release (its reset fails).
    asyncpg.exceptions.InternalClientError,
    DatabaseUnavailable,
)
"""What PostgreSQL or the broker raise when they fail or are out of reach (not gigwire's bugs)."""


FAILED: dict[str, str] = {
    "SUBSCRIBE_CHAT": "Could not subscribe now; retry.",
    "UNSUBSCRIBE_CHAT": "Could not unsubscribe now; retry.",
    "CHAT_MESSAGE": "The message was not confirmed stored; send it again with the same clientMsgId.",
    "MESSAGE_READ": "The read mark was not stored; retry.",
    "TYPING_START": "Could not relay typing now; retry.",
    "TYPING_STOP": "Could not relay typing now; retry.",
    "WATCH_CONVERSATIONS": "Could not change the watch now; retry.",
}
"""What an event that failed on the database did not do, in the client's terms."""


def failure_message(event: str, busy: bool) -> str:
    """The `internal` ERROR message of `event` failing on the database: what was not done, and
    whether the database was out of connections (busy) or failed."""
    cause = "the database is busy" if busy else "the server failed"
    return f"{FAILED.get(event, 'Nothing was done; retry.')} ({cause})"


async def _people(hub: Hub, order_id: str) -> chat.Participants:
    """The chat's two users, cached per process: an order's never change once it exists; a
    pre-order thread's are the same users once its order opens (hub/threads.py), when the entry
    is replaced. Raises HubError not_found."""
    people = hub.participants.get(order_id)
    if people is None:
        people = await threads.people(hub.pool, order_id)
        if people is None:
            raise HubError("not_found", f"No order {order_id}.")
        hub.participants.put(order_id, people)
    return people


async def _check(hub: Hub, session: Session, order_id: str) -> None:
    """Only the chat's two users may use it; the answer is cached per session for an order's chat.
    A pre-order thread is not cached per session: its sends are checked each time (blocks)."""
    if order_id in session.allowed:
        return
    people = await _people(hub, order_id)
    if session.user_id not in people:
        raise HubError("forbidden", "Only the order's client and doer may use its chat.")
    if not people.pre_order:
        session.allowed.add(order_id)


async def _subscribe(hub: Hub, session: Session, data: SubscribeChat) -> SubscribeAck:
    order_id = data.order_id
    await _check(hub, session, order_id)
    last, replayed = await hub.subscribe(session, order_id, data.since_seq)
    return SubscribeAck(order_id, last, replayed)


async def _unsubscribe(hub: Hub, session: Session, data: OrderRef) -> OrderAck:
    await hub.unsubscribe(session, data.order_id)
    return OrderAck(data.order_id)


async def _send(hub: Hub, session: Session, data: ChatSend) -> ChatAck:
    order_id = data.order_id
    await _check(hub, session, order_id)
    attachments = data.attachments or []
    if any(a.media_id is not None for a in attachments):
        attachments = await _with_media(hub, session, order_id, attachments)
    people = hub.participants.get(order_id)
    if people is None or people.pre_order:
        people = await _people(hub, order_id)
    outgoing = chat.Outgoing(
        order_id,
        session.user_id,
        data.text or "",
        attachments,
        data.client_msg_id,
        people.other(session.user_id),
    )
    answer = None
    if people.pre_order:  # one transaction with the block check (hub/threads.py)
        answer = await threads.store_pre_order(hub.pool, outgoing, people)
        if answer is None:  # the order opened meanwhile: its chat from now on
            people = chat.Participants(people.client_id, people.doer_id)
            hub.participants.put(order_id, people)
            session.allowed.add(order_id)
    message, _created = answer or await hub.writer.store(outgoing)
    # Stored first (in a batch: hub/chat_writer.py), then sent on without waiting for the broker; a
    # resend (same clientMsgId) sends the stored message again, since its first publish may never have
    # happened (a crash after the commit). The hub drops seqs it already delivered.
    hub.send_chat(order_id, Frame.encode("CHAT_MESSAGE", message))
    # The users' sessions that watch their conversation lists learn of it: one small frame per
    # watched user, in the same background pipeline; nobody watching, nothing (hub/conversations.py).
    watched = [u for u in (people.client_id, people.doer_id) if hub.watchers.wanted(u)]
    if watched:
        signal = Frame.encode("CONVERSATION_UPDATED", _activity(message))
        for user_id in watched:
            hub.publish_soon(conversations.channel(user_id), signal)
    return ChatAck(message.id, message.seq, message.created_at, message.client_msg_id)


def _activity(message: ChatMessage) -> ConversationUpdated:
    return ConversationUpdated(
        message.order_id,
        message.id,
        message.seq,
        message.sender_id,
        message.text[:PREVIEW],
        len(message.attachments),
        message.created_at,
    )


async def _with_media(
    hub: Hub, session: Session, order_id: str, attachments: list[Attachment]
) -> list[Attachment]:
    """The attachments with each media's type and size from its row (hub/media_refs.py); bad_request
    for a media id the sender may not attach in this order."""
    try:
        facts = await media_refs.resolve(
            hub.pool, session.user_id, "chat_attachment", [a.media_id for a in attachments], order_id
        )
    except media_refs.MediaRefError as exc:
        raise HubError("bad_request", exc.message) from None
    return [
        a
        if a.media_id is None
        else Attachment(media_id=a.media_id, name=a.name, mime=facts[a.media_id].content_type,
                        size=facts[a.media_id].size)
        for a in attachments
    ]  # fmt: skip


async def _read(hub: Hub, session: Session, data: MessageRead) -> ReadAck:
    message_id = data.message_id
    found = await chat.message_order(hub.pool, message_id)
    if found is None:
        raise HubError("not_found", f"No message {message_id}.")
    order_id, seq = found
    await _check(hub, session, order_id)
    mark, read_at, moved = await chat.mark_read(hub.pool, order_id, session.user_id, message_id, seq)
    if moved:
        event = ReadReceipt(order_id, session.user_id, message_id, mark, read_at)
        hub.publish_soon(f"order:{order_id}", Frame.encode("MESSAGE_READ", event))
    return ReadAck(order_id, mark)


async def _typing_start(hub: Hub, session: Session, data: OrderRef) -> OrderAck:
    order_id = data.order_id
    await _check(hub, session, order_id)
    now = time.monotonic()
    handle = session.typing.pop(order_id, None)
    if handle is not None:
        handle.cancel()
    if handle is None or now - session.typing_sent.get(order_id, 0.0) >= TYPING_RELAY_EVERY_S:
        session.typing_sent[order_id] = now
        hub.publish_soon(f"order:{order_id}", _typing("TYPING_START", order_id, session.user_id))

    timer = asyncio.get_running_loop().call_later(TYPING_TTL_S, _expire_typing, hub, session, order_id)
    session.typing[order_id] = timer
    return OrderAck(order_id)


def _expire_typing(hub: Hub, session: Session, order_id: str) -> None:
    """A TYPING_START neither renewed nor stopped within TYPING_TTL_S: the chat hears TYPING_STOP. A
    renewal or a stop cancels the timer, so a timer that fires is the current one. (A function with
    arguments, not a closure over its own timer: that was a reference cycle per expiry, left for
    the cycle collector.)"""
    if session.typing.pop(order_id, None) is not None:
        session.typing_sent.pop(order_id, None)
        hub.publish_soon(f"order:{order_id}", _typing("TYPING_STOP", order_id, session.user_id))


async def _typing_stop(hub: Hub, session: Session, data: OrderRef) -> OrderAck:
    order_id = data.order_id
    await _check(hub, session, order_id)
    handle = session.typing.pop(order_id, None)
    session.typing_sent.pop(order_id, None)
    if handle is not None:
        handle.cancel()
        hub.publish_soon(f"order:{order_id}", _typing("TYPING_STOP", order_id, session.user_id))
    return OrderAck(order_id)


def _typing(kind: str, order_id: str, user_id: str) -> Frame:
    return Frame.encode(kind, Typing(order_id, user_id))


async def _watch(hub: Hub, session: Session, data: WatchConversations) -> WatchAck:
    on = data.enabled is not False
    await conversations.watch(hub, session, on)
    return WatchAck(on)


_HANDLERS: dict[str, Callable[[Hub, Session, Any], Awaitable[Struct | None]]] = {
    "WATCH_CONVERSATIONS": _watch,
    "SUBSCRIBE_CHAT": _subscribe,
    "UNSUBSCRIBE_CHAT": _unsubscribe,
    "CHAT_MESSAGE": _send,
    "MESSAGE_READ": _read,
    "TYPING_START": _typing_start,
    "TYPING_STOP": _typing_stop,
}
