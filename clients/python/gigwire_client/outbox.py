"""The chat messages a client has sent and not yet seen acknowledged, in the order sent.

Each message keeps its clientMsgId from the first try to its ACK: the server stores a resend with
the same clientMsgId once, so resending after any connection loss is safe. The client sends them
one at a time, head first, so they are stored in the order they were sent, on every connection."""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from gigwire_client.errors import ClosedError, GigwireError


@dataclass(frozen=True)
class ChatAck:
    """A message stored: its id, its seq in the order's chat, and its clientMsgId."""

    id: str
    seq: int
    created_at: int
    client_msg_id: str


@dataclass
class Outgoing:
    """One message to send until acknowledged."""

    order_id: str
    data: dict[str, Any]
    client_msg_id: str
    future: asyncio.Future[ChatAck]
    attempts: int = 0


class Outbox:
    """A bounded FIFO of Outgoing messages; `max_size` counts those not yet acknowledged."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._items: deque[Outgoing] = deque()
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def add(
        self, order_id: str, text: str, attachments: list[dict[str, Any]] | None, client_msg_id: str | None
    ) -> Outgoing:
        """Queue a message; GigwireError queue_full when `max_size` are already waiting."""
        if len(self._items) >= self.max_size:
            raise GigwireError("queue_full", f"{self.max_size} messages are waiting to be sent; retry later.")
        cid = client_msg_id or uuid.uuid4().hex
        data: dict[str, Any] = {"orderId": order_id, "text": text, "clientMsgId": cid}
        if attachments:
            data["attachments"] = attachments
        item = Outgoing(order_id, data, cid, asyncio.get_running_loop().create_future())
        self._items.append(item)
        self._changed.set()
        return item

    async def head(self) -> Outgoing:
        """The oldest message not yet acknowledged (waits for one)."""
        while not self._items:
            self._changed.clear()
            await self._changed.wait()
        return self._items[0]

    def done(self, item: Outgoing, ack: ChatAck | None = None, error: Exception | None = None) -> None:
        """The head was acknowledged (`ack`) or refused for good (`error`): settle it, drop it."""
        if self._items and self._items[0] is item:
            self._items.popleft()
        if item.future.done():
            return
        if error is not None:
            item.future.set_exception(error)
        elif ack is not None:
            item.future.set_result(ack)

    def fail_all(self) -> None:
        """The client closed: every waiting send ends with ClosedError."""
        while self._items:
            item = self._items.popleft()
            if not item.future.done():
                item.future.set_exception(
                    ClosedError("The client closed before the message was acknowledged.")
                )
