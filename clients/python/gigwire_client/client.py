"""GigwireClient: one user's connection to gigwire's realtime hub over raw WebSocket (`/ws`,
docs/protocol.md), kept alive across faults.

- Authenticates with an AUTHENTICATE frame from a token provider; renews the token when the server
  says it is expiring (SESSION_EXPIRING) and re-AUTHENTICATEs on the same connection; after a 4401
  close it asks the provider for a fresh token and reconnects.
- Reconnects with jittered exponential backoff (`backoff_min_s` doubling to `backoff_max_s`), at
  least 5 s after 1008 (rate limits); stops for good only on `close()` or a refused login.
- Resumes the user's feed from the last feedSeq seen (`sinceFeedSeq`) and every subscribed chat
  from its last seq (`sinceSeq`), dropping what it already delivered: each event reaches the
  application once, in order.
- Sends chat messages with a clientMsgId, one at a time in the order given, resending after a
  reconnect until acknowledged (the server stores a resend once); at most `max_queue` wait.
- Events come as typed dataclasses (gigwire_client.events), through `async for event in client`
  and/or callbacks registered with `on()`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from gigwire_client.errors import ClosedError
from gigwire_client.events import Event, StateChange
from gigwire_client.link import TYPING_RENEW_S, Link, _answer, _Lost
from gigwire_client.outbox import ChatAck


class GigwireClient(Link):
    """The realtime client of one user. `url` is the server's base URL (http(s)://host:port) or a
    function giving it on each connect. Start it with `start()` (or `async with`)."""

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting (in the background); returns at once."""
        if self._task is None:
            if self._session is None:
                self._session = aiohttp.ClientSession()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="gigwire-client")

    async def close(self) -> None:
        """Close the connection and stop; unacknowledged sends fail with ClosedError."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            # Let the connection loop see its connection end first (its "disconnected" comes
            # before "closed"); cancel it when it is in a backoff sleep or a connect instead.
            await asyncio.wait({self._task}, timeout=2.0)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.outbox.fail_all()
        if self.error is None:
            self._emit(StateChange("closed", reason="closed by the application"))
            for queue in self._queues:
                queue.put_nowait(None)
        if self._own_session and self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> GigwireClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- events -----------------------------------------------------------------------------------

    def on(self, kind: type[Any] | None, callback: Callable[[Any], Any]) -> None:
        """Call `callback(event)` for every event of class `kind` (every event when None). A
        coroutine function's result is scheduled as a task."""
        self._listeners.append((kind, callback))

    def __aiter__(self) -> AsyncIterator[Event]:
        return self.events()

    async def events(self) -> AsyncIterator[Event]:
        """Every event from now on, until the client closes (ends after StateChange 'closed')."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._queues.append(queue)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self._queues.remove(queue)

    # -- operations -------------------------------------------------------------------------------

    async def subscribe(self, order_id: str, since_seq: int | None = None) -> dict[str, Any] | None:
        """Join an order's chat, kept across reconnects (replayed from the last seq seen). With
        `since_seq`, messages after it are delivered first. Answers the ACK data when connected
        now, else None (the subscription is made on connecting)."""
        self._chats.add(order_id)
        if since_seq is not None:
            self.seqs[order_id] = since_seq
        if not self.connected:
            return None
        return await self._subscribe(order_id)

    async def watch_conversations(self, on: bool = True) -> None:
        """Keep a conversation list live: while on, a message in any of the user's chats this
        client has not subscribed to comes as a ConversationUpdated event (subscribed ones come as
        ChatMessage). Kept across reconnects; answered by the server when connected now."""
        self._watching = on
        if self.connected:
            _answer(await self._request("WATCH_CONVERSATIONS", {"enabled": on}))

    async def unsubscribe(self, order_id: str) -> None:
        """Leave an order's chat."""
        self._chats.discard(order_id)
        self.seqs.pop(order_id, None)
        if self.connected:
            with contextlib.suppress(_Lost, TimeoutError):
                await self._request("UNSUBSCRIBE_CHAT", {"orderId": order_id})

    def send_nowait(
        self,
        order_id: str,
        text: str = "",
        attachments: list[dict[str, Any]] | None = None,
        client_msg_id: str | None = None,
    ) -> asyncio.Future[ChatAck]:
        """Queue a chat message; the future resolves with its ACK (after any number of
        reconnects), or fails with GigwireError for a refusal (forbidden, too_large...)."""
        if self._closing:
            raise ClosedError()
        return self.outbox.add(order_id, text, attachments, client_msg_id).future

    async def send(
        self,
        order_id: str,
        text: str = "",
        attachments: list[dict[str, Any]] | None = None,
        client_msg_id: str | None = None,
    ) -> ChatAck:
        """Send a chat message and wait for it to be stored (see send_nowait)."""
        return await self.send_nowait(order_id, text, attachments, client_msg_id)

    async def mark_read(self, message_id: str) -> dict[str, Any]:
        """Move the read mark up to this message; the ACK data {orderId, seq}. Needs a connection
        (waits for one up to the answer timeout)."""
        await self.wait_connected(self.answer_timeout_s)
        return _answer(await self._request("MESSAGE_READ", {"messageId": message_id}))

    async def typing(self, order_id: str) -> None:
        """The user is typing in the order's chat: sent at most once per 3 s (best effort)."""
        now = time.monotonic()
        if now - self._typing.get(order_id, -TYPING_RENEW_S) < TYPING_RENEW_S:
            return
        self._typing[order_id] = now
        await self._fire("TYPING_START", {"orderId": order_id})

    async def stop_typing(self, order_id: str) -> None:
        """The user stopped typing (sent only when a start was)."""
        if self._typing.pop(order_id, None) is not None:
            await self._fire("TYPING_STOP", {"orderId": order_id})
