"""Every server frame the hub encodes in this test process, checked against /api/asyncapi.json.

tests/conftest.py installs one FrameRecorder for the whole run: it wraps `Frame.encode` and keeps
one sample per distinct (type, shape of data, ref or not), so recording costs a dict lookup and a
small JSON parse per frame. At the end of the run every sample is validated against its message
schema in the AsyncAPI document (hub.asyncapi.build) and the run fails on any mismatch.

Frames a test builds itself (a deliberately partial ORDER_UPDATE fixture, say) are not the hub's:
an encode called from a `tests.` module is skipped, and so is a mapping handed to hub.publish from
outside (a test's payload or a stored outbox row: only typed Structs from hub.events are recorded
there)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from msgspec import Struct

from hub.asyncapi import build
from hub.frame import Frame

Shape = Any


def shape(value: Any) -> Shape:
    """A hashable outline of a JSON value: keys and value kinds, lists by their distinct items."""
    if isinstance(value, dict):
        return tuple(sorted((k, shape(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("[]", tuple(sorted({shape(v) for v in value}, key=repr)))
    return type(value).__name__


class FrameRecorder:
    """Samples of server frames, one per (type, shape, has ref)."""

    def __init__(self) -> None:
        self.samples: dict[tuple[str, Shape, bool], dict[str, Any]] = {}
        self.seen = 0
        self._original: Any = None

    def install(self) -> None:
        original = self._original = Frame.__dict__["encode"]
        encode: Callable[..., Frame] = original.__func__
        recorder = self

        def recording(cls: type[Frame], *args: Any, **kwargs: Any) -> Frame:
            frame = encode(cls, *args, **kwargs)
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("tests."):
                return frame
            if caller == "hub.publish":
                data = args[1] if len(args) > 1 else kwargs.get("data")
                if not isinstance(data, Struct):
                    return frame
            recorder.record(frame.data)
            return frame

        Frame.encode = classmethod(recording)  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        if self._original is not None:
            Frame.encode = self._original  # type: ignore[method-assign]
            self._original = None

    def record(self, raw: bytes) -> None:
        self.seen += 1
        body = orjson.loads(raw)
        key = (str(body.get("type")), shape(body.get("data")), "ref" in body)
        if key not in self.samples:
            self.samples[key] = body

    def problems(self, document: dict[str, Any] | None = None) -> list[str]:
        """One line per sample that its AsyncAPI message (`ws.server.<type>`) does not accept."""
        doc = document if document is not None else build()
        messages = doc["components"]["messages"]
        validators: dict[str, Draft202012Validator] = {}
        found: list[str] = []
        for (kind, _, _), body in self.samples.items():
            key = f"ws.server.{kind}"
            if key not in messages:
                found.append(f"{kind}: not a server message of the AsyncAPI document: {body}")
                continue
            if key not in validators:
                schema = {"components": doc["components"], "$ref": f"#/components/messages/{key}/payload"}
                validators[key] = Draft202012Validator(schema)
            for error in validators[key].iter_errors(body):
                where = "/".join(str(p) for p in error.absolute_path)
                found.append(f"{kind} at /{where}: {error.message}; frame {str(body)[:300]}")
        return found
