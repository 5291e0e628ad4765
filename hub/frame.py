"""Frame: one server message encoded once, reused for every recipient of every transport.

The canonical form is the raw WebSocket bytes, JSON `{"type", "data"[, "ref"]}`, which is also the
broker payload (see hub/publish.py). Another transport's bytes (e.g. the Socket.IO packet) are built
from it at most once per frame through `for_transport`, whatever the number of recipients."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import orjson
from msgspec import Struct

from hub.events import encoder

T = TypeVar("T")

_TYPE_PREFIX = b'{"type":"'


class Frame:
    """One encoded server message. `data` is the raw WebSocket text frame as UTF-8 bytes."""

    __slots__ = ("_parsed", "_transports", "_type", "data")

    def __init__(self, data: bytes, event_type: str | None = None, parsed: dict[str, Any] | None = None):
        self.data = data
        self._type = event_type
        self._parsed = parsed
        self._transports: dict[str, Any] | None = None

    @classmethod
    def encode(
        cls, event_type: str, data: Struct | Mapping[str, Any] | None = None, ref: str | None = None
    ) -> Frame:
        """Encode one server frame `{"type", "data"?, "ref"?}`; `data` and `ref` are left out when
        None. `data` is the event's Struct from hub.events (a mapping is encoded as it is)."""
        body: dict[str, Any] = {"type": event_type}
        if data is not None:
            body["data"] = data
        if ref is not None:
            body["ref"] = ref
        # A Struct's parsed form is only built if a reader asks for it (Socket.IO, tests).
        return cls(encoder.encode(body), event_type, None if isinstance(data, Struct) else body)

    @property
    def size(self) -> int:
        """Bytes this frame takes in a raw WebSocket session's queue."""
        return len(self.data)

    @property
    def parsed(self) -> dict[str, Any]:
        """The frame as a JSON object, decoded at most once. Raises ValueError if it is not one."""
        if self._parsed is None:
            value = orjson.loads(self.data)
            if not isinstance(value, dict):
                raise ValueError("a frame must be a JSON object")
            self._parsed = value
        return self._parsed

    @property
    def type(self) -> str:
        """The event name. Frames we encode start with `{"type":"`, so this rarely needs a parse."""
        if self._type is None:
            data = self.data
            end = data.find(b'"', len(_TYPE_PREFIX)) if data.startswith(_TYPE_PREFIX) else -1
            if end > 0:
                self._type = data[len(_TYPE_PREFIX) : end].decode()
            else:
                try:
                    self._type = str(self.parsed.get("type", "?"))
                except ValueError:
                    self._type = "?"
        return self._type

    @property
    def payload(self) -> dict[str, Any]:
        """The frame's `data` object (empty when absent or not an object)."""
        data = self.parsed.get("data")
        return data if isinstance(data, dict) else {}

    def for_transport(self, name: str, build: Callable[[Frame], T]) -> T:
        """`build(self)` computed once per transport `name` and cached on the frame."""
        cache = self._transports
        if cache is None:
            cache = self._transports = {}
        try:
            value: T = cache[name]
        except KeyError:
            value = cache[name] = build(self)
        return value

    def __repr__(self) -> str:
        return f"Frame({self.type}, {len(self.data)} bytes)"
