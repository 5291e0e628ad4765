"""Running the web process's event loop until SIGTERM or SIGINT, then stopping it within a bound,
whatever state the libraries are in (docs/operations.md, "Limits and timeouts").

On the first signal the shutdown clock starts; `timeout` seconds later the loop is closed:

1. graceful (until `timeout - CANCEL_SHARE - FINAL_SHARE`): the serving coroutine is told to stop
   and runs the app's own shutdown (sessions closed 1001 with their grace, open requests finished,
   cleanup contexts);
2. cancel (until `timeout - FINAL_SHARE`): every task still running is cancelled;
3. abandon: tasks that ignored their cancellation (python-engineio swallows CancelledError in its
   handlers) are left pending, named in one warning line, and not run again; async generators and
   the default executor get what remains.

A second signal skips to step 2. `Stopped.clean` is False when something was abandoned, so the
process can exit without joining threads that may never end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("gigwire.lifecycle")

CANCEL_SHARE = 2.0
"""Seconds (at most a fifth of the bound) that cancelled tasks get to finish."""
FINAL_SHARE = 1.0
"""Seconds (at most a tenth of the bound) kept for async generators and the default executor."""

Serve = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class Stopped:
    """How the loop ended: `clean` unless tasks or executor threads were abandoned."""

    clean: bool = True
    abandoned: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_bounded(serve: Serve, timeout: float) -> Stopped:
    """Run `serve(stop)` on a new event loop until it returns or a signal sets `stop`, then stop the
    loop within `timeout` seconds of the signal (steps above). Raises what `serve` raised (not
    CancelledError) after the loop is closed."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()
    hurry = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            hurry.set()
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, ValueError, RuntimeError):
            loop.add_signal_handler(signum, on_signal)
    main = loop.create_task(serve(stop), name="gigwire-serve")
    stopped = Stopped()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            loop.run_until_complete(_first(main, loop.create_task(stop.wait())))
        stop.set()
        started = loop.time()
        deadline = started + timeout
        cancel_share = min(CANCEL_SHARE, timeout / 5)
        final_share = min(FINAL_SHARE, timeout / 10)
        # 1. graceful
        loop.run_until_complete(_until(loop, {main}, deadline - cancel_share - final_share, hurry))
        # 2. cancel
        pending = _pending(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(_until(loop, pending, deadline - final_share, None))
        # 3. abandon
        left = _pending(loop)
        if left:
            stopped.clean = False
            stopped.abandoned = [_describe(task) for task in left]
            for task in left:
                # Never run again; without this, each would be logged at ERROR when collected.
                task._log_destroy_pending = False  # type: ignore[attr-defined]
            log.warning(
                "shutdown: tasks ignored their cancellation; abandoned",
                extra={"abandoned": stopped.abandoned, "bound_s": timeout},
            )
        final_deadline = max(deadline, loop.time() + 0.1)
        loop.run_until_complete(_bounded(loop.shutdown_asyncgens(), final_deadline))
        if not loop.run_until_complete(_bounded(loop.shutdown_default_executor(), final_deadline)):
            stopped.clean = False
            log.warning("shutdown: executor threads still busy; abandoned", extra={"bound_s": timeout})
        stopped.seconds = loop.time() - started
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    if main.done() and not main.cancelled() and main.exception() is not None:
        raise main.exception()  # type: ignore[misc]
    return stopped


async def _first(main: asyncio.Task[None], stopping: asyncio.Task[Any]) -> None:
    """Wait until `main` ends or `stopping` (the stop signal) is done."""
    await asyncio.wait({main, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()


async def _until(
    loop: asyncio.AbstractEventLoop,
    tasks: set[asyncio.Task[Any]],
    deadline: float,
    hurry: asyncio.Event | None,
) -> None:
    """Wait for `tasks` until `deadline` (loop time), or until `hurry` is set."""
    if not tasks:
        return
    waiters: set[asyncio.Future[Any]] = set(tasks)
    hurried = loop.create_task(hurry.wait()) if hurry is not None else None
    if hurried is not None:
        waiters.add(hurried)
    try:
        remaining = set(tasks)
        while remaining and loop.time() < deadline and not (hurry is not None and hurry.is_set()):
            await asyncio.wait(waiters, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED)
            remaining = {t for t in tasks if not t.done()}
            waiters = remaining | ({hurried} if hurried is not None else set())
    finally:
        if hurried is not None:
            hurried.cancel()


async def _bounded(coro: Coroutine[Any, Any, None], deadline: float) -> bool:
    """Run `coro` until `deadline`: True when it finished, False when it was left running."""
    loop = asyncio.get_running_loop()
    task = loop.create_task(coro)
    done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - loop.time()))
    if not done:
        task._log_destroy_pending = False  # type: ignore[attr-defined]
        return False
    with contextlib.suppress(Exception):
        task.result()
    return True


def _pending(loop: asyncio.AbstractEventLoop) -> set[asyncio.Task[Any]]:
    current = asyncio.current_task(loop)
    return {task for task in asyncio.all_tasks(loop) if not task.done() and task is not current}


def _describe(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", None) or repr(coro)
    return f"{task.get_name()} ({name})"
