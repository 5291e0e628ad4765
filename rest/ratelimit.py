"""Per-IP and per-user request limits on /api, shared across processes through the Store.

Each /api request counts one hit in a fixed 60-second window for its client IP (API_RATE_PER_IP) and,
when it carries a valid access token, one for its user (API_RATE_PER_USER). Every /api response
carries the figures of the tighter of the two:

- `X-RateLimit-Limit`: requests allowed in the window;
- `X-RateLimit-Remaining`: requests left in it;
- `X-RateLimit-Reset`: whole seconds until the window starts afresh (a delay, not a date).

Over either limit the answer is 429 `rate_limited` with `Retry-After` (seconds). CORS preflights are
answered before this middleware and are not counted. When the Store is unreachable the limiter lets
requests through (without the headers) and logs a warning: the API stays up while Redis is down."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import math
from dataclasses import dataclass

from aiohttp import web

from hub.app import Handler
from hub.keys import SETTINGS, STORE, TOKENS
from hub.logs import outage
from hub.tokens import Claims, TokenError
from rest.errors import ApiError, error_middleware
from rest.http import CLAIMS

log = logging.getLogger("gigwire.ratelimit")

WINDOW_S = 60

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=16)
def _networks(trusted: tuple[str, ...]) -> tuple[_Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in trusted)


def client_ip(request: web.Request) -> str:
    """The client's IP address: the peer address, unless the peer is one of TRUSTED_PROXIES; then
    the right-most address of X-Forwarded-For that is not a trusted proxy (the hops left of it were
    written by the client and prove nothing)."""
    remote = request.remote or "unknown"
    trusted = request.app[SETTINGS].trusted_proxies
    if not trusted:
        return remote
    networks = _networks(trusted)

    def is_trusted(address: str) -> bool | None:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        return any(ip in net for net in networks)

    if not is_trusted(remote):
        return remote
    hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", []) for h in v.split(",")]
    hops = [h for h in hops if h]
    for hop in reversed(hops):
        verdict = is_trusted(hop)
        if verdict is None:
            return remote  # a garbled header: fall back to what we know
        if not verdict:
            return str(ipaddress.ip_address(hop))
    return hops[0] if hops else remote


def _claims(request: web.Request) -> Claims | None:
    # The user is only identified here; a bad token is the handler's to refuse with 401.
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        return request.app[TOKENS].verify(token.strip())
    except TokenError:
        return None


@dataclass(frozen=True)
class _Window:
    scope: str
    limit: int
    count: int
    reset_s: float

    @property
    def remaining(self) -> int:
        return max(self.limit - self.count, 0)

    @property
    def over(self) -> bool:
        return self.count > self.limit


async def _count(request: web.Request) -> list[_Window] | None:
    settings = request.app[SETTINGS]
    limits = [("ip", client_ip(request), settings.api_rate_per_ip)]
    claims = _claims(request)
    if claims is not None:
        # require_user reads it from here: the token is verified once per request.
        request[CLAIMS] = claims
        limits.append(("user", claims.user_id, settings.api_rate_per_user))
    store = request.app[STORE]
    try:
        hits = await asyncio.gather(*(store.hit(f"rl:{scope}:{who}", WINDOW_S) for scope, who, _ in limits))
    except Exception as exc:
        outage(log, "rate limiter store unreachable; letting the request through", error=repr(exc))
        return None
    return [
        _Window(scope, limit, count, reset)
        for (scope, _, limit), (count, reset) in zip(limits, hits, strict=True)
    ]


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the request against its IP and user limits; answer 429 when over either; put the
    X-RateLimit-* headers on every /api response, errors included."""
    if not request.path.startswith("/api"):
        return await handler(request)
    windows = await _count(request)
    if windows is None:
        return await handler(request)
    over = [w for w in windows if w.over]
    shown = over[0] if over else min(windows, key=lambda w: w.remaining)
    reset = max(math.ceil(shown.reset_s), 1)
    headers = {
        "X-RateLimit-Limit": str(shown.limit),
        "X-RateLimit-Remaining": str(shown.remaining),
        "X-RateLimit-Reset": str(reset),
    }
    response: web.StreamResponse
    if over:
        who = "this IP address" if shown.scope == "ip" else "this user"
        response = ApiError(
            "rate_limited",
            f"Too many requests from {who}: at most {shown.limit} a minute. Retry after {reset} s.",
            details={"scope": shown.scope, "limit": shown.limit, "retryAfter": reset},
            headers={"Retry-After": str(reset)},
        ).response()
    else:
        # Turn handler errors into responses here, inside this middleware, so they get the headers too.
        response = await error_middleware(request, handler)
    if not response.prepared:
        response.headers.update(headers)
    return response


async def throttle_code_sends(request: web.Request, target: list[tuple[str, int, int, str]]) -> None:
    """Count a one-time-code send against the client IP's hourly window (OTP_SENDS_PER_IP) and
    then each of `target`'s (key, window s, limit, "where" words) windows; rate_limited with
    Retry-After when over one. The IP is counted first, so a refused send still costs the IP."""
    settings = request.app[SETTINGS]
    store = request.app[STORE]
    checks = [
        (f"otp:ip:{client_ip(request)}", 3600, settings.otp_sends_per_ip, "from this IP address this hour")
    ]
    for key, window, limit, where in checks + target:
        count, reset_s = await store.hit(key, window)
        if count > limit:
            wait = max(math.ceil(reset_s), 1)
            raise ApiError(
                "rate_limited",
                f"{limit} code(s) already sent {where}; wait {wait} s before asking again.",
                details={"retryAfter": wait},
                headers={"Retry-After": str(wait)},
            )
