"""hub.clock: the one conversion of times to the wire's epoch milliseconds."""

from __future__ import annotations

import datetime as dt
import time

from hub.clock import epoch_ms, now_ms


def test_epoch_ms_truncates_to_whole_milliseconds_and_keeps_none() -> None:
    assert epoch_ms(None) is None
    assert epoch_ms(dt.datetime(2024, 1, 1, tzinfo=dt.UTC)) == 1_704_067_200_000
    assert epoch_ms(dt.datetime(2024, 1, 1, 0, 0, 0, 999_999, tzinfo=dt.UTC)) == 1_704_067_200_999
    ist = dt.timezone(dt.timedelta(hours=5, minutes=30))
    assert epoch_ms(dt.datetime(2024, 1, 1, 5, 30, tzinfo=ist)) == 1_704_067_200_000


def test_now_ms_is_the_wall_clock() -> None:
    before = int(time.time() * 1000)
    assert before - 1 <= now_ms() <= int(time.time() * 1000) + 1
