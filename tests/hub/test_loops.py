"""The supervised loop (hub/loops.py) on a real event loop: every failure is logged and counted,
the wait backs off and starts over after a success, cancellation ends it at once, `stopping` ends it
after the step in hand, and nothing else ever does. Then both Redis listeners survive an error that
is not a Redis one."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from hub.broker_redis import RedisBroker
from hub.broker_redis_cluster import _Shard
from hub.loops import Backoff, supervise
from tests.services import Services

log = logging.getLogger("gigwire.test.loops")


def scripted(*outcomes: BaseException | None) -> tuple[Callable[[], Awaitable[None]], list[int]]:
    """A step that raises (or returns, for None) each outcome in turn, then blocks forever; and the
    list of its calls so far (one entry per call)."""
    calls: list[int] = []

    async def step() -> None:
        calls.append(len(calls))
        if len(calls) > len(outcomes):
            await asyncio.Event().wait()
        outcome = outcomes[len(calls) - 1]
        if outcome is not None:
            raise outcome

    return step, calls


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def warnings_of(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == message]


async def test_failures_are_logged_counted_and_backed_off_and_a_success_resets_the_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gigwire.test.loops")
    redis_error = RedisConnectionError("redis went away")
    step, calls = scripted(
        RuntimeError("boom"),
        KeyError("missing"),
        redis_error,
        None,  # a success
        RuntimeError("again"),
    )
    counted: list[Exception] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = asyncio.create_task(
        supervise(
            "test",
            step,
            logger=log,
            message="test step failed",
            on_error=counted.append,
            backoff=Backoff(0.02, 0.08, jitter=0),
            expected=(RedisConnectionError,),
            extra={"shard": "s1"},
        )
    )
    await until(lambda: len(calls) == 6)  # five outcomes, then the sixth call blocks
    elapsed = loop.time() - started

    assert [type(e) for e in counted] == [RuntimeError, KeyError, RedisConnectionError, RuntimeError]
    records = warnings_of(caplog, "test step failed")
    assert len(records) == 4
    assert all(r.levelno == logging.WARNING for r in records)
    assert [r.__dict__["loop"] for r in records] == ["test"] * 4
    assert [r.__dict__["shard"] for r in records] == ["s1"] * 4
    assert [r.__dict__["error"] for r in records] == [
        "RuntimeError('boom')",
        "KeyError('missing')",
        repr(redis_error),
        "RuntimeError('again')",
    ]
    # Doubling from 0.02 while it fails; back to 0.02 after the success.
    assert [r.__dict__["retryInS"] for r in records] == [0.02, 0.04, 0.08, 0.02]
    assert elapsed >= 0.02 + 0.04 + 0.08 + 0.02 - 0.005  # the waits were really slept
    # A traceback for the unexpected errors only.
    assert [bool(r.exc_info) for r in records] == [True, True, False, True]
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancel_stops_it_at_once_during_a_wait_and_during_a_step() -> None:
    step, calls = scripted(RuntimeError("boom"))
    task = asyncio.create_task(supervise("test", step, logger=log, message="failed", backoff=Backoff(30, 60)))
    await until(lambda: len(calls) == 1)
    await asyncio.sleep(0.01)  # now in its 15..45 s wait
    loop = asyncio.get_running_loop()
    started = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.time() - started < 0.1

    step, calls = scripted()  # blocks in its first call
    task = asyncio.create_task(supervise("test", step, logger=log, message="failed"))
    await until(lambda: len(calls) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 0.1)


async def test_it_never_exits_on_its_own() -> None:
    failures = 0

    async def always_fails() -> None:
        raise ValueError("never works")

    def count(_exc: Exception) -> None:
        nonlocal failures
        failures += 1

    successes = 0

    async def always_works() -> None:
        nonlocal successes
        successes += 1
        await asyncio.sleep(0.001)

    def broken_counter(_exc: Exception) -> None:
        raise LookupError("the counter itself is broken")

    tasks = [
        asyncio.create_task(
            supervise(
                "f", always_fails, logger=log, message="m", on_error=count, backoff=Backoff(0.001, 0.004)
            )
        ),
        asyncio.create_task(supervise("s", always_works, logger=log, message="m")),
        asyncio.create_task(
            supervise(
                "b",
                always_fails,
                logger=log,
                message="m",
                on_error=broken_counter,
                backoff=Backoff(0.001, 0.004),
            )
        ),
    ]
    await asyncio.sleep(0.3)
    assert failures > 10 and successes > 10
    assert not any(t.done() for t in tasks)
    for t in tasks:
        t.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)


async def test_stopping_ends_it_after_the_step_in_hand_or_cuts_a_wait_short() -> None:
    # SIGTERM semantics: the batch in hand finishes, then the loop returns (no cancellation).
    stopping = asyncio.Event()
    release = asyncio.Event()
    finished: list[bool] = []

    async def batch() -> None:
        await release.wait()
        finished.append(True)

    task = asyncio.create_task(supervise("batch", batch, logger=log, message="m", stopping=stopping))
    await asyncio.sleep(0.01)
    stopping.set()
    await asyncio.sleep(0.01)
    assert not task.done()  # still in its batch
    release.set()
    await asyncio.wait_for(task, 1)
    assert finished == [True]

    # Stopping during a long backoff wait returns at once.
    stopping = asyncio.Event()
    step, calls = scripted(RuntimeError("boom"))
    task = asyncio.create_task(
        supervise("wait", step, logger=log, message="m", stopping=stopping, backoff=Backoff(30, 60))
    )
    await until(lambda: len(calls) == 1)
    stopping.set()
    await asyncio.wait_for(task, 0.1)
    assert len(calls) == 1


def test_the_default_backoff_is_one_second_doubling_to_sixty_with_jitter() -> None:
    low, high = Backoff(rng=lambda: 0.0), Backoff(rng=lambda: 0.999999)
    nominal = [1, 2, 4, 8, 16, 32, 60, 60]
    assert [low.next() for _ in nominal] == [n * 0.5 for n in nominal]
    assert [round(high.next(), 3) for _ in nominal] == [round(n * 1.5, 3) for n in nominal]
    low.reset()
    assert low.next() == 0.5
    assert all(0.5 <= Backoff().next() < 1.5 for _ in range(50))
    assert Backoff().delay == 1.0
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


# -- the Redis listeners ----------------------------------------------------------------------------


async def test_the_redis_broker_listener_survives_an_error_that_is_not_a_redis_one(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gigwire.broker")
    got: list[tuple[str, bytes]] = []
    prefix = f"{services.redis_prefix}loops-{uuid.uuid4().hex[:8]}:"
    broker = RedisBroker(services.redis_url, prefix, lambda c, d: got.append((c, d)))
    broker._backoff = Backoff(0.01, 0.05)
    real = broker._pubsub.subscribe
    failed: list[bool] = []

    async def subscribe_failing_once(*args: Any, **kwargs: Any) -> Any:
        if not failed:
            failed.append(True)
            raise KeyError("a bug, not a lost connection")
        return await real(*args, **kwargs)

    broker._pubsub.subscribe = subscribe_failing_once  # type: ignore[method-assign]
    await broker.start()
    try:
        assert broker._connected.is_set()
        assert broker.failures == 1
        await broker.subscribe("chan")
        await broker.publish("chan", b"hello")
        await until(lambda: got == [("chan", b"hello")])
        (record,) = warnings_of(caplog, "broker connection lost; reconnecting")
        assert bool(record.exc_info) and "KeyError" in record.__dict__["error"]
    finally:
        await broker.close()


class _Owner:
    """What a cluster shard calls back on, recorded."""

    def __init__(self, placeholder: str) -> None:
        self.placeholder = placeholder
        self.failures = 0
        self.delivered: list[tuple[str, bytes]] = []
        self.losses = 0

    def deliver(self, name: str, data: bytes) -> None:
        self.delivered.append((name, data))

    def recovered(self, shard: _Shard) -> None:
        pass

    def lost(self, shard: _Shard) -> None:
        self.losses += 1

    def moved(self, name: str) -> None:
        pass


async def test_a_cluster_shard_listener_survives_an_error_that_is_not_a_redis_one(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    # It used to catch only RedisError/OSError: anything else ended the shard's listener for good.
    # Redis 7 takes SSUBSCRIBE/SPUBLISH outside a cluster too, so one plain server stands in.
    caplog.set_level(logging.WARNING, logger="gigwire.broker")
    prefix = f"{services.redis_prefix}loops-{uuid.uuid4().hex[:8]}:"
    owner = _Owner(prefix + "_")
    client = Redis.from_url(services.redis_url)
    url = urlsplit(services.redis_url)
    shard = _Shard(owner, url.hostname or "127.0.0.1", url.port or 6379, {})  # type: ignore[arg-type]
    shard._backoff = Backoff(0.01, 0.05)
    real = shard._subscribe_all
    failed: list[bool] = []

    async def subscribe_all_failing_once() -> None:
        if not failed:
            failed.append(True)
            raise KeyError("a bug, not a lost connection")
        await real()

    shard._subscribe_all = subscribe_all_failing_once  # type: ignore[method-assign]
    try:
        await until(shard._connected.is_set)
        assert owner.failures == 1 and owner.losses == 1
        await shard.add(prefix + "chan")
        await client.spublish(prefix + "chan", b"hello")
        await until(lambda: owner.delivered == [(prefix + "chan", b"hello")])
        (record,) = warnings_of(caplog, "shard connection lost; reconnecting")
        assert bool(record.exc_info) and record.__dict__["shard"] == shard.name
    finally:
        await shard.close()
        await client.aclose()
