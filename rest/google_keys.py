"""Google's signing keys (JWKS) for ID tokens, fetched with aiohttp and cached.

The key set is kept for the Cache-Control max-age Google sends with it (DEFAULT_TTL_S without one,
at most MAX_TTL_S). A token naming a key id not in the set makes one refetch (Google rotates its keys
ahead of using them), at most once per `refetch_gap_s`, so tokens with made-up key ids cannot make
the server hammer Google. Concurrent requests share one fetch. When a fetch fails the keys in hand
are kept (a stale set beats refusing every sign-in while Google is unreachable)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import aiohttp
import jwt
import orjson
from aiohttp import web

log = logging.getLogger("gigwire.google")

DEFAULT_TTL_S = 300.0
MAX_TTL_S = 86400.0
FETCH_TIMEOUT_S = 10.0
_MAX_AGE = re.compile(r"max-age=(\d+)")


class KeysUnavailable(Exception):
    """No key set could be fetched, and none is in hand."""


class GoogleKeys:
    """The JWKS at `url`, cached; `key(kid)` is the RS256 public key with that id, or None."""

    def __init__(self, url: str, refetch_gap_s: float = 30.0) -> None:
        self.url = url
        self.refetch_gap_s = refetch_gap_s
        self.fetches = 0
        self._keys: dict[str, jwt.PyJWK] = {}
        self._expires = 0.0
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key with id `kid`: from the cache while it is fresh, else after a fetch; a kid not in
        a fresh set refetches once per refetch_gap_s. KeysUnavailable when there is no key set."""
        now = time.monotonic()
        if now < self._expires and kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            now = time.monotonic()
            stale = now >= self._expires
            unknown = kid not in self._keys and now - self._fetched_at >= self.refetch_gap_s
            if stale or unknown:
                await self._fetch()
        if not self._keys:
            raise KeysUnavailable("no Google key set could be fetched")
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        self.fetches += 1
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, session.get(self.url) as resp:
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
                body = orjson.loads(await resp.read())
                ttl = _ttl(resp.headers.get("Cache-Control", ""))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("Google keys not fetched", extra={"url": self.url, "error": repr(exc)})
            return
        keys = _parse(body)
        if not keys:
            log.warning("Google key set holds no RS256 key", extra={"url": self.url})
            return
        self._keys = keys
        self._expires = self._fetched_at + ttl


def _ttl(cache_control: str) -> float:
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return DEFAULT_TTL_S
    return min(float(match.group(1)), MAX_TTL_S)


def _parse(body: Any) -> dict[str, jwt.PyJWK]:
    """kid -> key of every usable RS256 signing key of a JWKS document."""
    keys: dict[str, jwt.PyJWK] = {}
    entries = body.get("keys") if isinstance(body, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA" or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256":
            continue
        try:
            keys[entry["kid"]] = jwt.PyJWK(entry, algorithm="RS256")
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
    return keys


GOOGLE_KEYS: web.AppKey[GoogleKeys] = web.AppKey("google_keys")
"""The app's key cache; made on first use from GOOGLE_JWKS_URL (tests may set their own)."""
