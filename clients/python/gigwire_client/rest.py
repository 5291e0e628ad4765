"""The few REST routes a realtime client needs: phone login (send-otp, verify-otp), token refresh,
chat history and the feed over REST. Errors are raised as GigwireError with the body's code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from gigwire_client.errors import GigwireError
from gigwire_client.events import ChatMessage, Json, chat_message


@dataclass(frozen=True)
class Tokens:
    """An access token (for /ws and REST) and the refresh token that renews it."""

    token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class Login:
    """The answer of verify-otp: tokens and the user."""

    tokens: Tokens
    user: Json
    is_new_user: bool


@dataclass(frozen=True)
class HistoryPage:
    """A page of chat history, oldest first; `next_before_seq` pages further back (None: the start)."""

    messages: list[ChatMessage]
    next_before_seq: int | None


class RestClient:
    """REST calls to the gigwire at `base_url` (e.g. http://localhost:8080). Give an aiohttp session
    to share one; otherwise the client opens its own (close it with `close()`)."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._own = session is None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own = True
        return self._session

    async def close(self) -> None:
        if self._own and self._session is not None:
            await self._session.close()

    async def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        """One request; the whole success body, or GigwireError from the error body."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(method, self.base_url + path, headers=headers, **kw) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = None
            if resp.status >= 400 or not isinstance(body, dict) or not body.get("success"):
                error = body.get("error", {}) if isinstance(body, dict) else {}
                retry = resp.headers.get("Retry-After")
                raise GigwireError(
                    str(error.get("code", "internal")),
                    str(error.get("message", f"HTTP {resp.status}")),
                    retry_after_ms=int(retry) * 1000 if retry and retry.isdigit() else None,
                    status=resp.status,
                )
            return body

    async def send_otp(self, phone: str) -> None:
        """Ask for a login code sent to `phone` (E.164)."""
        await self.call("POST", "/api/auth/send-otp", json={"phone": phone})

    async def verify_otp(self, phone: str, otp: str) -> Login:
        """Log in with the code; creates the user on the first login."""
        data = (await self.call("POST", "/api/auth/verify-otp", json={"phone": phone, "otp": otp}))["data"]
        return Login(_tokens(data), dict(data.get("user") or {}), bool(data.get("isNewUser")))

    async def refresh(self, refresh_token: str) -> Tokens:
        """Rotate the refresh token: new tokens (the old refresh token is used up)."""
        body = await self.call("POST", "/api/auth/refresh", json={"refreshToken": refresh_token})
        return _tokens(body["data"])

    async def history(
        self, token: str, order_id: str, before_seq: int | None = None, limit: int = 50
    ) -> HistoryPage:
        """A page of an order's chat, oldest first: the newest `limit`, or those before `before_seq`."""
        params = {"limit": str(limit), **({"beforeSeq": str(before_seq)} if before_seq else {})}
        body = await self.call("GET", f"/api/orders/{order_id}/messages", token, params=params)
        return HistoryPage([chat_message(m) for m in body["data"]], body.get("nextBeforeSeq"))

    async def feed(self, token: str, since_seq: int = 0, limit: int = 50) -> Json:
        """The user's feed after `since_seq` over REST: {items, lastSeq, expired}."""
        params = {"sinceSeq": str(since_seq), "limit": str(limit)}
        result: Json = (await self.call("GET", "/api/feed", token, params=params))["data"]
        return result


def _tokens(data: Json) -> Tokens:
    return Tokens(str(data["token"]), str(data["refreshToken"]), int(data["expiresIn"]))
