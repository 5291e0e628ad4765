"""The connection machinery of GigwireClient (gigwire_client/client.py): one connection after
another, each authenticated, resumed and served until it ends; frames answered by ref; events
deduplicated by seq and feedSeq before the application sees them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from gigwire_client.errors import AuthError, ClosedError, GigwireError
from gigwire_client.events import (
    Authenticated,
    ChatMessage,
    Event,
    FeedExpired,
    NewApplication,
    Notification,
    OrderUpdate,
    SessionExpiring,
    StateChange,
    parse,
)
from gigwire_client.outbox import ChatAck, Outbox, Outgoing
from gigwire_client.tokens import TokenProvider

log = logging.getLogger("gigwire_client")

_FEED = (OrderUpdate, NewApplication, Notification)
TYPING_RENEW_S = 3.0  # the server relays a renewal within 3 s only once: no need to send more often


class _Lost(Exception):
    """The connection ended while waiting for an answer."""


class Link:
    """The state and connection loop behind GigwireClient (its constructor's arguments are
    documented there)."""

    def __init__(
        self,
        url: str | Callable[[], str],
        tokens: TokenProvider,
        *,
        since_feed_seq: int | None = None,
        max_queue: int = 1000,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 30.0,
        answer_timeout_s: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._url = url
        self.tokens = tokens
        self.feed_seq = since_feed_seq
        """The last feedSeq delivered (None until the first AUTHENTICATED): persist it to resume."""
        self.seqs: dict[str, int] = {}
        """Order id -> the last chat seq delivered, for every subscribed chat."""
        self.user_id: str | None = None
        self.backoff_min_s, self.backoff_max_s = backoff_min_s, backoff_max_s
        self.answer_timeout_s = answer_timeout_s
        self.outbox = Outbox(max_queue)
        self._session, self._own_session = session, session is None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._refs = itertools.count(1)
        self._chats: set[str] = set()
        self._watching = False  # WATCH_CONVERSATIONS asked for, again on every connection
        self._typing: dict[str, float] = {}
        self._listeners: list[tuple[type[Any] | None, Callable[[Any], Any]]] = []
        self._queues: list[asyncio.Queue[Event | None]] = []
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.error: Exception | None = None
        """Why the client stopped by itself (AuthError: log in again)."""

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Until the client is authenticated (TimeoutError after `timeout`; the error that stopped it)."""
        async with asyncio.timeout(timeout):
            while not self._connected.is_set():
                if self._task is not None and self._task.done():
                    raise self.error or ClosedError()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await self._connected.wait()

    def _emit(self, event: Event) -> None:
        for queue in self._queues:
            queue.put_nowait(event)
        for kind, callback in self._listeners:
            if kind is None or isinstance(event, kind):
                try:
                    result = callback(event)
                    if asyncio.iscoroutine(result):
                        asyncio.get_running_loop().create_task(result)
                except Exception:
                    log.exception("gigwire_client: an event callback failed")

    # -- the connection ---------------------------------------------------------------------------

    def _base(self) -> str:
        url = self._url() if callable(self._url) else self._url
        return url.rstrip("/")

    async def _run(self) -> None:
        failures, fresh = 0, False
        while not self._closing:
            self._emit(StateChange("connecting"))
            code: int | None = None
            reason = ""
            try:
                token = await self.tokens.token(fresh)
                fresh = False
                assert self._session is not None
                ws = await self._session.ws_connect(self._base() + "/ws", heartbeat=15.0, autoping=True)
            except AuthError as exc:
                self._stop(exc)
                return
            except (aiohttp.ClientError, OSError, TimeoutError, GigwireError) as exc:
                reason = repr(exc)
            else:
                code, authenticated = await self._serve(ws, token)
                reason = f"closed {code}" if code is not None else "connection lost"
                if authenticated:
                    failures = 0
            self._emit(StateChange("disconnected", code, reason))
            if self._closing:
                break
            delay = min(self.backoff_max_s, self.backoff_min_s * 2**failures) * (0.5 + random.random() / 2)
            failures += 1
            if code == 4401:
                fresh = True  # a fresh token; reconnect at once the first time
                delay = 0 if failures == 1 else delay
            elif code == 1008:
                delay = max(delay, 5.0)
            await asyncio.sleep(delay)

    def _stop(self, error: Exception) -> None:
        self.error = error
        self._closing = True
        self.outbox.fail_all()
        self._emit(StateChange("closed", reason=str(error), error=error))
        for queue in self._queues:
            queue.put_nowait(None)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse, token: str) -> tuple[int | None, bool]:
        """Authenticate, resume and run one connection until it ends: (close code, authenticated)."""
        self._ws = ws
        tasks: list[asyncio.Task[Any]] = []
        authenticated = False
        reader = asyncio.get_running_loop().create_task(self._read(ws))
        try:
            data: dict[str, Any] = {"token": token}
            if self.feed_seq is not None:
                data["sinceFeedSeq"] = self.feed_seq
            hello = await self._request("AUTHENTICATE", data, ws=ws)
            if hello["type"] != "AUTHENTICATED":
                # Refused: the server closes (4401) after its ERROR; take its code.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await reader
                refused = (hello.get("data") or {}).get("code") == "unauthorized"
                return (4401 if refused else ws.close_code), False
            authenticated = True
            self._on_authenticated(hello["data"])
            tasks.append(asyncio.get_running_loop().create_task(self._resume(ws)))
            tasks.append(asyncio.get_running_loop().create_task(self._sender(ws)))
            await reader
        except (_Lost, TimeoutError, aiohttp.ClientError, OSError):
            pass
        finally:
            self._connected.clear()
            self._ws = None
            for task in [*tasks, reader]:
                task.cancel()
            await asyncio.gather(*tasks, reader, return_exceptions=True)
            for future in self._answers.values():
                if not future.done():
                    future.set_exception(_Lost())
            self._answers.clear()
            if not ws.closed:
                await ws.close()
        return ws.close_code, authenticated

    def _on_authenticated(self, data: dict[str, Any]) -> None:
        event = parse("AUTHENTICATED", data)
        assert isinstance(event, Authenticated)
        self.user_id = event.user_id
        if self.feed_seq is None:
            self.feed_seq = event.feed_seq
        self._connected.set()
        self._emit(event)
        self._emit(StateChange("connected"))

    async def _resume(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Subscribe again to every chat, each from its last seq seen."""
        for order_id in list(self._chats):
            with contextlib.suppress(GigwireError):
                await self._subscribe(order_id, ws)
        if self._watching:
            with contextlib.suppress(GigwireError):
                _answer(await self._request("WATCH_CONVERSATIONS", {"enabled": True}, ws=ws))

    async def _subscribe(
        self, order_id: str, ws: aiohttp.ClientWebSocketResponse | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"orderId": order_id}
        if order_id in self.seqs:
            data["sinceSeq"] = self.seqs[order_id]
        ack = await self._request("SUBSCRIBE_CHAT", data, ws=ws)
        answer = _answer(ack)
        # Without a replay the chat starts from the order's last seq at subscription.
        self.seqs[order_id] = max(self.seqs.get(order_id, 0), int(answer["lastSeq"]))
        return answer

    async def _sender(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Send the outbox head first, one message at a time, until the connection ends."""
        while True:
            item = await self.outbox.head()
            await self._send_one(item, ws)

    async def _send_one(self, item: Outgoing, ws: aiohttp.ClientWebSocketResponse) -> None:
        item.attempts += 1
        frame = await self._request("CHAT_MESSAGE", item.data, ws=ws)
        if frame["type"] == "ACK":
            d = frame["data"]
            ack = ChatAck(
                d["id"], int(d["seq"]), int(d["createdAt"]), d.get("clientMsgId") or item.client_msg_id
            )
            self.outbox.done(item, ack)
            return
        err = frame.get("data") or {}
        code = str(err.get("code"))
        if code == "rate_limited":
            await asyncio.sleep(int(err.get("retryAfterMs") or 100) / 1000)
        elif code == "internal":
            await asyncio.sleep(min(5.0, 0.2 * item.attempts))
        else:  # the message itself is refused: resending cannot help
            self.outbox.done(item, error=GigwireError(code, str(err.get("message")), err.get("retryAfterMs")))

    async def _request(
        self, kind: str, data: dict[str, Any], ws: aiohttp.ClientWebSocketResponse | None = None
    ) -> dict[str, Any]:
        """Send a frame with a fresh ref; the frame answering it (ACK, ERROR, AUTHENTICATED).
        _Lost when the connection ends first, TimeoutError after answer_timeout_s."""
        ws = ws or self._ws
        if ws is None or ws.closed:
            raise _Lost()
        ref = f"p{next(self._refs)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[ref] = future
        try:
            await ws.send_str(orjson.dumps({"type": kind, "data": data, "ref": ref}).decode())
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise _Lost() from exc
        try:
            async with asyncio.timeout(self.answer_timeout_s):
                return await future
        except TimeoutError:
            await ws.close()  # an unanswered frame: the connection is not healthy; start afresh
            raise
        finally:
            self._answers.pop(ref, None)

    async def _fire(self, kind: str, data: dict[str, Any]) -> None:
        """Send a frame without ref (best effort: dropped while offline)."""
        ws = self._ws
        if ws is not None and not ws.closed and self.connected:
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await ws.send_str(orjson.dumps({"type": kind, "data": data}).decode())

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            try:
                frame = orjson.loads(msg.data)
                self._dispatch(frame)
            except (ValueError, KeyError, TypeError):
                log.warning("gigwire_client: an unreadable frame was ignored: %.200s", msg.data)

    def _dispatch(self, frame: dict[str, Any]) -> None:
        kind, data = frame.get("type"), frame.get("data") or {}
        ref = frame.get("ref")
        if ref is not None and ref in self._answers:
            future = self._answers[ref]
            if not future.done():
                future.set_result(frame)
            if kind == "AUTHENTICATED" and self.connected:
                renewed = parse(kind, data)  # a re-authentication on this connection
                if renewed is not None:
                    self._emit(renewed)
            return
        if not isinstance(kind, str) or kind in ("ACK", "PONG", "AUTHENTICATED"):
            return
        event = parse(kind, data)
        if event is None:
            return
        if isinstance(event, ChatMessage):
            last = self.seqs.get(event.order_id)
            if event.order_id not in self._chats or (last is not None and event.seq <= last):
                return  # already delivered (a replay overlapping live ones), or left
            self.seqs[event.order_id] = event.seq
        elif isinstance(event, _FEED):
            if self.feed_seq is not None and event.feed_seq <= self.feed_seq:
                return
            self.feed_seq = event.feed_seq
        elif isinstance(event, FeedExpired):
            self.feed_seq = event.feed_seq
        elif isinstance(event, SessionExpiring):
            asyncio.get_running_loop().create_task(self._renew())
        self._emit(event)

    async def _renew(self) -> None:
        """Renew the token and re-AUTHENTICATE on the same connection (on SESSION_EXPIRING)."""
        try:
            token = await self.tokens.token(True)
            await self._request("AUTHENTICATE", {"token": token})
        except AuthError as exc:
            self._stop(exc)
            if self._ws is not None:
                await self._ws.close()
        except (_Lost, TimeoutError, GigwireError, aiohttp.ClientError, OSError):
            pass  # the next connection asks for a fresh token after its 4401


def _answer(frame: dict[str, Any]) -> dict[str, Any]:
    """The ACK data of an answer; GigwireError for an ERROR."""
    data: dict[str, Any] = frame.get("data") or {}
    if frame.get("type") == "ERROR":
        raise GigwireError(str(data.get("code")), str(data.get("message")), data.get("retryAfterMs"))
    return data
