"""Wall-clock time in the wire's unit: integer epoch milliseconds, for every timestamp gigwire sends."""

from __future__ import annotations

import time
from datetime import datetime
from typing import overload


def now_ms() -> int:
    """The current wall-clock time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


@overload
def epoch_ms(value: datetime) -> int: ...
@overload
def epoch_ms(value: None) -> None: ...
@overload
def epoch_ms(value: datetime | None) -> int | None: ...
def epoch_ms(value: datetime | None) -> int | None:
    """`value` (an aware datetime, e.g. a timestamptz column) in epoch milliseconds, truncated toward
    zero as `int(value.timestamp() * 1000)`; None (a NULL column) stays None."""
    return None if value is None else int(value.timestamp() * 1000)
