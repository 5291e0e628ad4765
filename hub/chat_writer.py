"""Group commit of chat messages: the messages that arrive on this process while one batch is being
stored are stored together by the next, in one statement (hub.chat.store_batch), so a busy process
spends one round trip and one commit on many messages instead of one each.

A batch starts as soon as a message arrives and nothing is being stored; it closes when the batch
before it returns, or at `max_batch` messages. A batch the database refuses as a whole (a resend
racing the same clientMsgId on another process, a sender whose account was deleted) is stored again
message by message, so one message's fault is its own."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import asyncpg

from hub import chat
from hub.chat import Outgoing
from hub.events import ChatMessage

log = logging.getLogger("gigwire.chat")

MAX_BATCH = 256


@dataclass
class _Waiting:
    message: Outgoing
    done: asyncio.Future[tuple[ChatMessage, bool]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class ChatWriter:
    """Stores chat messages for this process's sessions in batches; one batch in flight at a time."""

    def __init__(self, pool: asyncpg.Pool, max_batch: int = MAX_BATCH) -> None:
        self._pool = pool
        self.max_batch = max_batch
        self._queue: list[_Waiting] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.messages = 0

    async def store(self, message: Outgoing) -> tuple[ChatMessage, bool]:
        """Store `message` with its order's next seq (or find its clientMsgId's first message);
        returns (the stored message, True when this call stored it). Raises what the database
        raised; a message whose wait is cancelled may still be stored (a resend finds it)."""
        waiting = _Waiting(message)
        self._queue.append(waiting)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="gigwire-chat-writer")
        return await asyncio.shield(waiting.done)

    async def _run(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                await self._store(batch)
        finally:
            self._task = None
            if self._queue:  # a store() arrived while this task was ending
                self._task = asyncio.get_running_loop().create_task(self._run(), name="gigwire-chat-writer")

    async def _store(self, batch: list[_Waiting]) -> None:
        try:
            answers = await chat.store_batch(self._pool, [w.message for w in batch])
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if len(batch) == 1 and not isinstance(exc, asyncpg.UniqueViolationError):
                _fail(batch[0], exc)
                return
            # Refused whole: each message on its own, so only the faulty ones fail (a unique
            # violation is a clientMsgId committed meanwhile: its retry finds it).
            for waiting in batch:
                try:
                    (answer,) = await chat.store_batch(self._pool, [waiting.message])
                except Exception as single:
                    _fail(waiting, single)
                else:
                    _answer(waiting, answer)
            return
        except Exception as exc:  # the pool is closed, the connection lost, ...
            for waiting in batch:
                _fail(waiting, exc)
            return
        self.batches += 1
        self.messages += len(batch)
        for waiting, answer in zip(batch, answers, strict=True):
            _answer(waiting, answer)


def _answer(waiting: _Waiting, answer: tuple[ChatMessage, bool]) -> None:
    if not waiting.done.done():
        waiting.done.set_result(answer)


def _fail(waiting: _Waiting, exc: BaseException) -> None:
    if not waiting.done.done():
        waiting.done.set_exception(exc)
        waiting.done.exception()  # retrieved here too: a cancelled waiter must not log it as lost
