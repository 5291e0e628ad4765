"""Chat frames go to the other processes in the background, batched: each stored message is handed
to this process's sessions at once and queued here; one task publishes whatever is queued in one
pipelined round trip, so neither the sender's ACK nor its next frame waits on the broker. A publish
that fails is counted and logged: the other processes read what they missed from PostgreSQL (their
order channels fill a gap when the next message arrives, and refill after a broker reconnect)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hub.broker import Broker
from hub.logs import outage

log = logging.getLogger("gigwire.hub")

MAX_PIPELINE = 512
MAX_QUEUED = 50_000  # past this (a broker stalled for long) the oldest are dropped: PostgreSQL has them


class BatchPublisher:
    """Publishes queued (channel, bytes) in order, one pipeline per batch, one batch at a time."""

    def __init__(
        self,
        broker: Broker,
        on_failure: Callable[[int], None],
        deliver_locally: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self._broker = broker
        self._on_failure = on_failure
        self._deliver_locally = deliver_locally
        self._queue: list[tuple[str, bytes]] = []
        self._local: set[int] = set()  # ids of queued messages this process gets only if publishing fails
        self._task: asyncio.Task[None] | None = None

    def send(self, channel: str, data: bytes, *, fallback: bool = False) -> None:
        """Queue one message for every process; never awaits. With `fallback` (a frame this process
        delivers only through the broker: read marks, typing), a failed publish delivers it to this
        process's sessions at least."""
        item = (channel, data)
        self._queue.append(item)
        if fallback:
            self._local.add(id(item))
        if len(self._queue) > MAX_QUEUED:
            dropped = len(self._queue) - MAX_QUEUED
            for old in self._queue[:dropped]:
                self._local.discard(id(old))
            del self._queue[:dropped]
            self._on_failure(dropped)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="gigwire-publisher")

    async def drain(self) -> None:
        """Until everything queued so far is published (or failed)."""
        while self._task is not None:
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_PIPELINE], self._queue[MAX_PIPELINE:]
                local = [item for item in batch if id(item) in self._local]
                self._local.difference_update(id(item) for item in local)
                try:
                    await self._broker.publish_many(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._on_failure(len(batch))
                    outage(
                        log,
                        "publish failed; other processes read back from PostgreSQL",
                        messages=len(batch),
                        error=repr(exc),
                    )
                    if self._deliver_locally is not None:
                        for channel, data in local:
                            self._deliver_locally(channel, data)
        finally:
            self._task = None
