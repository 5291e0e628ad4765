"""What the soak found under outages, each pinned down: outage warnings are one line per kind per
window (not one per request or channel), asyncpg's pool retry warnings carry no traceback, a
subscribe waiter failed while its send failed is not logged as "never retrieved", and channel
refills after a broker reconnect are bounded by the hub's fill gate and back off when they fail."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest

from hub.broker_confirm import Confirmations
from hub.frame import Frame
from hub.logs import OUTAGES, OutageFilter, outage
from hub.metrics import HubMetrics
from hub.sequenced import SeqChannel


def test_an_outage_is_one_line_per_kind_per_window(caplog: pytest.LogCaptureFixture) -> None:
    OUTAGES.forget()
    log = logging.getLogger("gigwire.test-outage")
    with caplog.at_level(logging.WARNING, logger="gigwire.test-outage"):
        for _ in range(500):  # a restart under load: every request and channel fails at once
            outage(log, "database unavailable", path="/api/orders")
            outage(log, "gap fill failed; retrying", channel="order:x")
    assert [(r.getMessage(), r.suppressed) for r in caplog.records] == [  # type: ignore[attr-defined]
        ("database unavailable", 0),
        ("gap fill failed; retrying", 0),
    ]
    # The next window's line says how many were dropped.
    assert OUTAGES.admit("database unavailable", now=10**9) == 499


def test_asyncpg_pool_retry_warnings_lose_their_traceback() -> None:
    OUTAGES.forget()
    keep = OutageFilter()
    try:
        raise ConnectionRefusedError(111, "Connect call failed")
    except ConnectionRefusedError:
        import sys

        exc_info = sys.exc_info()
    records = [
        logging.LogRecord(
            "asyncpg.pool",
            logging.WARNING,
            "pool.py",
            1,
            "Failed to restore the pool connection floor; retrying",
            None,
            exc_info,
        )
        for _ in range(3)
    ]
    written = [r for r in records if keep.filter(r)]
    assert len(written) == 1
    assert written[0].exc_info is None and "ConnectionRefusedError" in written[0].error  # type: ignore[attr-defined]
    error = logging.LogRecord("asyncpg.pool", logging.ERROR, "pool.py", 1, "a bug", None, exc_info)
    assert keep.filter(error) and error.exc_info is not None  # errors pass unchanged


async def test_a_subscribe_waiter_failed_while_its_send_failed_is_not_left_unretrieved() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        confirmations = Confirmations()

        async def send() -> None:  # the connection is lost while SUBSCRIBE is being sent
            confirmations.fail_all(ConnectionError("broker connection lost"))
            raise ConnectionError("send failed")

        with pytest.raises(ConnectionError):
            await confirmations.wait("gigwire:order:x", send)
        gc.collect()
        await asyncio.sleep(0)
        assert not [c for c in reported if "never retrieved" in str(c.get("message"))], reported
    finally:
        loop.set_exception_handler(None)


class _Source:
    """A chat source whose reads wait a little, counting how many run at once; the first
    `failures` reads fail as an exhausted pool would."""

    kind = "order"

    def __init__(self, failures: int = 0) -> None:
        self.running = 0
        self.most = 0
        self.failures = failures

    async def last_seq(self, pool: Any, key: str) -> int:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(0.02)
            if self.failures > 0:
                self.failures -= 1
                raise OSError("no connection")
            return 0
        finally:
            self.running -= 1

    async def rows_after(self, pool: Any, key: str, after: int, upto: int, limit: int) -> list[Any]:
        return []

    def frame(self, row: Any) -> Frame:
        raise AssertionError("no rows")

    def seq(self, frame: Frame) -> int | None:
        return None

    def skip(self, frame: Frame) -> str | None:
        return None


class _Host:
    def __init__(self, gate: int) -> None:
        self.metrics = HubMetrics()
        self.fill_gate = asyncio.Semaphore(gate)
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def pool(self) -> Any:
        return None

    def spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        return task

    def current(self, channel: SeqChannel) -> bool:
        return True


async def test_refills_after_a_reconnect_are_bounded_by_the_fill_gate() -> None:
    host, source = _Host(gate=3), _Source()
    channels = [SeqChannel(host, source, f"o{i}", 100, 10**6) for i in range(40)]
    for channel in channels:
        channel.last = 0
    await asyncio.gather(*(c.fill() for c in channels))  # what a broker reconnect starts
    assert source.most == 3


async def test_a_failed_refill_backs_off() -> None:
    OUTAGES.forget()
    host, source = _Host(gate=1), _Source(failures=3)
    channel = SeqChannel(host, source, "o1", 100, 10**6)
    channel.last = 0
    loop = asyncio.get_running_loop()
    delays = []
    for _ in range(3):
        started = loop.time()
        await channel.fill()
        assert channel.gap_timer is not None
        delays.append(channel.gap_timer.when() - started)
        channel.gap_timer.cancel()
        channel.gap_timer = None
    # 1 s, 2 s, 4 s, each with jitter of +-50%: growing, never the old fixed 1 s retry storm.
    assert 0.5 <= delays[0] <= 1.6 and 1.0 <= delays[1] <= 3.1 and 2.0 <= delays[2] <= 6.1, delays
    assert channel.fill_failures == 3
    await channel.fill()  # the database is back
    assert channel.fill_failures == 0 and channel.gap_timer is None
