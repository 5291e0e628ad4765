"""Token providers: where the client gets the access token it authenticates with.

A provider is anything with `async def token(self, fresh: bool) -> str`. `fresh=True` means the
current token was refused or is about to expire: return a renewed one. `RefreshingTokens` renews
through POST /api/auth/refresh (rotating the refresh token), and also on its own when the token it
holds expires within `margin_s`; `StaticToken` always gives the same token (tests, short scripts)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from gigwire_client.errors import AuthError, GigwireError
from gigwire_client.rest import RestClient, Tokens


class TokenProvider(Protocol):
    async def token(self, fresh: bool = False) -> str:
        """An access token; a renewed one when `fresh`."""
        ...


class StaticToken:
    """One fixed token (no renewal)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self, fresh: bool = False) -> str:
        return self._token


def token_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT (epoch seconds), read without verifying; None when unreadable."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp")
        return float(exp) if isinstance(exp, int | float) else None
    except (IndexError, ValueError):
        return None


class RefreshingTokens:
    """Tokens renewed through /api/auth/refresh. Concurrent callers share one refresh (a refresh
    token used twice revokes the login). `on_tokens` is called with every new pair, to persist the
    refresh token. A refused refresh (401) raises AuthError: the user must log in again."""

    def __init__(
        self,
        rest: RestClient,
        tokens: Tokens,
        *,
        margin_s: float = 60.0,
        on_tokens: Callable[[Tokens], Awaitable[None] | None] | None = None,
    ) -> None:
        self.rest = rest
        self.current = tokens
        self.margin_s = margin_s
        self.on_tokens = on_tokens
        self._lock = asyncio.Lock()

    def _expiring(self) -> bool:
        exp = token_expiry(self.current.token)
        return exp is not None and exp - time.time() < self.margin_s

    async def token(self, fresh: bool = False) -> str:
        seen = self.current.token
        async with self._lock:
            # Another caller renewed it while this one waited: that one is fresh.
            if self.current.token != seen or not (fresh or self._expiring()):
                return self.current.token
            try:
                renewed = await self.rest.refresh(self.current.refresh_token)
            except GigwireError as exc:
                if exc.status == 401:
                    raise AuthError(exc.code, exc.message, status=401) from exc
                raise
            self.current = renewed
            if self.on_tokens is not None:
                result = self.on_tokens(renewed)
                if result is not None:
                    await result
            return renewed.token
