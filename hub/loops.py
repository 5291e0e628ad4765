"""One supervised loop for every background loop of gigwire: the workers' batch loops, their LISTEN
connection, the Redis brokers' pub/sub listeners and presence refresh.

The contract, the same everywhere: cancellation propagates at once; every other exception a step
raises is logged (a warning naming the loop, with the error's repr; a traceback too when the error
is not one of the loop's `expected` kinds), counted through the loop's `on_error`, and followed by a
wait that starts at 1 s and doubles up to 60 s, with jitter, and starts again from 1 s after a step
that succeeded. The loop ends only when its `stopping` event is set (checked before each step and
during each wait) or when it is cancelled: never on its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger("gigwire.loops")


class Backoff:
    """The waits of a retry loop: `first` seconds, doubling up to `cap`; each wait is jittered to
    within ±`jitter` of it (0.5: between half and one and a half), so processes that failed
    together do not retry together. `reset()` after a success starts again from `first`."""

    def __init__(
        self,
        first: float = 1.0,
        cap: float = 60.0,
        *,
        jitter: float = 0.5,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < first <= cap or not 0 <= jitter < 1:
            raise ValueError("Backoff needs 0 < first <= cap and 0 <= jitter < 1")
        self.first = first
        self.cap = cap
        self.jitter = jitter
        self._rng = rng
        self.delay = first
        """The un-jittered wait `next()` jitters next."""

    def next(self) -> float:
        """The wait before the next try, in seconds; doubles the one after it (up to `cap`)."""
        wait = self.delay * (1 - self.jitter + 2 * self.jitter * self._rng())
        self.delay = min(self.delay * 2, self.cap)
        return wait

    def reset(self) -> None:
        """A success: the next failure waits `first` again."""
        self.delay = self.first


async def sleep_or_stop(stopping: asyncio.Event | None, seconds: float) -> None:
    """Sleep `seconds`, or less when `stopping` is set (a plain sleep when it is None)."""
    if stopping is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


async def supervise(
    name: str,
    step: Callable[[], Awaitable[object]],
    *,
    logger: logging.Logger,
    message: str,
    on_error: Callable[[Exception], object] | None = None,
    stopping: asyncio.Event | None = None,
    backoff: Backoff | None = None,
    expected: tuple[type[BaseException], ...] = (),
    extra: Mapping[str, object] | None = None,
) -> None:
    """Run `step` again and again until `stopping` is set (until cancelled when it is None).

    A step that returns resets `backoff`; a step that runs for long (a listener holding its
    connection) calls `backoff.reset()` itself once it is healthy. A step that raises an
    `Exception` is logged on `logger` as `message` (extras: `loop`, `error`, `retryInS`, and
    `extra`), counted by `on_error(exc)`, and retried after `backoff.next()` seconds (cut short
    when `stopping` is set). Anything that is not an `Exception` (cancellation above all)
    propagates. A step that must end quietly (its own close broke its connection) returns
    instead of raising."""
    backoff = backoff if backoff is not None else Backoff()
    while stopping is None or not stopping.is_set():
        try:
            await step()
        except Exception as exc:
            wait = backoff.next()
            if on_error is not None:
                try:
                    on_error(exc)
                except Exception:  # a broken counter must not end the loop it counts
                    log.exception("loop error callback failed", extra={"loop": name})
            logger.warning(
                message,
                extra={**(extra or {}), "loop": name, "error": repr(exc), "retryInS": round(wait, 2)},
                exc_info=not isinstance(exc, expected),
            )
            await sleep_or_stop(stopping, wait)
        else:
            backoff.reset()
