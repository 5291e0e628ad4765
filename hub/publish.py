"""Publishing server events from any process (REST, workers) to the hub's channels.

The broker payload of every message is the raw WebSocket frame, JSON `{"type", "data"}` encoded once
by the publisher; every node forwards those bytes unchanged to its raw WebSocket sessions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from msgspec import Struct

from hub.broker import Broker
from hub.frame import Frame


def encode_frame(event_type: str, data: Struct | Mapping[str, Any]) -> bytes:
    """The wire bytes of one server frame; `data` is the event's Struct from hub.events (a mapping,
    e.g. a stored outbox payload, is encoded as it is)."""
    return Frame.encode(event_type, data).data


def feed_frame(event_type: str, data: Mapping[str, Any], feed_seq: int) -> Frame:
    """The frame of a user's feed entry: the event's data (its stored wire form) with `feedSeq`
    added, so both transports carry it the same way (Socket.IO has no envelope beside the data)."""
    return Frame.encode(event_type, {**data, "feedSeq": feed_seq})


async def publish_event(
    broker: Broker, channel: str, event_type: str, data: Struct | Mapping[str, Any]
) -> None:
    """Send one server event to every session on `channel` (`user:<id>` or `order:<id>`), on every node."""
    await broker.publish(channel, encode_frame(event_type, data))
