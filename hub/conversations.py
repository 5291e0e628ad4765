"""The live side of conversation lists: CONVERSATION_UPDATED, a small signal that a chat got a
message, for the sessions that asked for it (WATCH_CONVERSATIONS) and are not subscribed to that
chat (a subscribed session already gets the CHAT_MESSAGE itself, from which it updates its list).

The sender's process publishes one signal per participant on `user:<id>` in the background pipeline
that carries the chat message (hub/handlers.py); every process hands it here from Hub.deliver
instead of to the user's feed channel: it is not a feed event (no feedSeq, not stored, not replayed).
A client that reconnects refetches GET /api/conversations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.frame import Frame

if TYPE_CHECKING:
    from hub.hub import Hub

EVENT = "CONVERSATION_UPDATED"


def intercept(hub: Hub, user_id: str, frame: Frame) -> bool:
    """True when `frame` (from `user:<user_id>`) was a CONVERSATION_UPDATED: pushed to the user's
    local sessions that watch conversations and are not subscribed to its chat. Never awaits."""
    if frame.type != EVENT:
        return False
    sessions = hub.users.get(user_id)
    if not sessions:
        return True
    chat_id = frame.payload.get("orderId")
    for session in sessions:
        if session.conversations and chat_id not in session.orders:
            session.push(frame)
    return True
