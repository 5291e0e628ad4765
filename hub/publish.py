"""Publishing server events from any process (REST, workers) to the hub's channels.

The broker payload of every message is the raw WebSocket frame, JSON `{"type", "data"}` encoded once
by the publisher; every node forwards those bytes unchanged to its raw WebSocket sessions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from hub.broker import Broker


def encode_frame(event_type: str, data: Mapping[str, Any]) -> bytes:
    """The wire bytes of one server frame."""
    return orjson.dumps({"type": event_type, "data": data})


async def publish_event(broker: Broker, channel: str, event_type: str, data: Mapping[str, Any]) -> None:
    """Send one server event to every session on `channel` (`user:<id>` or `order:<id>`), on every node."""
    await broker.publish(channel, encode_frame(event_type, data))
