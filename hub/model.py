"""The base of every typed wire shape (REST bodies, realtime frames' data): msgspec Structs with
camelCase names on the wire, `load`, which builds one from a database row, and the scalar types
shared by many shapes (`Uuid`, `EpochMs`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

import msgspec

M = TypeVar("M", bound=msgspec.Struct)

_CAMEL = re.compile(r"_([a-z0-9])")

Uuid = Annotated[str, msgspec.Meta(extra_json_schema={"format": "uuid"})]
"""An id on the wire: a UUID as text."""
EpochMs = Annotated[int, msgspec.Meta(description="epoch milliseconds")]
"""A moment on the wire: epoch milliseconds."""


class Wire(msgspec.Struct, rename="camel", kw_only=True):
    """A response shape: camelCase on the wire. Build one from a database row with `load`."""


def _camel(name: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def wire_value(value: Any) -> Any:
    """A column value as the wire carries it: timestamps as epoch milliseconds, UUIDs as text."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, UUID):
        return str(value)
    return value


def load(model: type[M], row: Mapping[str, Any] | Any, **extra: Any) -> M:
    """`model` from a database row: snake_case columns become the model's fields (columns the model
    does not have are ignored), timestamps become epoch milliseconds, UUIDs text. `extra` adds or
    overrides fields by wire name. `row` is a mapping or an asyncpg Record."""
    data = {_camel(key): wire_value(value) for key, value in row.items()}
    data.update(extra)
    return msgspec.convert(data, model)


def load_all(model: type[M], rows: Iterable[Mapping[str, Any] | Any]) -> list[M]:
    """`load` for each row."""
    return [load(model, row) for row in rows]
