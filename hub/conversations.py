"""The live side of conversation lists: CONVERSATION_UPDATED, a small signal that a chat got a
message, for the sessions that asked for it (WATCH_CONVERSATIONS) and are not subscribed to that
chat (a subscribed session already gets the CHAT_MESSAGE itself, from which it updates its list).

The sender's process publishes one signal per participant on `convo:<userId>`, in the background
pipeline that carries the chat message (hub/handlers.py). Only a process with a watching session of
that user listens there (Hub.watch, reference-counted like every channel), so while nobody watches a
signal costs one pipelined PUBLISH that Redis delivers to no one: no process decodes it. It is not a
feed event (no feedSeq, not stored, not replayed); a client that reconnects refetches
GET /api/conversations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.frame import Frame

if TYPE_CHECKING:
    from hub.hub import Hub

KIND = "convo"
EVENT = "CONVERSATION_UPDATED"


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
