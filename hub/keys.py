"""Typed keys of the aiohttp application state shared by hub, rest and workers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from hub.broker import Broker
from hub.settings import Settings
from hub.store import Store
from hub.tokens import TokenCodec

if TYPE_CHECKING:
    from hub.hub import Hub
    from hub.ws_front import WsFront

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
REDIS: web.AppKey[Redis | None] = web.AppKey("redis")
STORE: web.AppKey[Store] = web.AppKey("store")
BROKER: web.AppKey[Broker] = web.AppKey("broker")
TOKENS = web.AppKey("tokens", TokenCodec)
HUB: web.AppKey[Hub] = web.AppKey("hub")
WS_FRONT: web.AppKey[WsFront] = web.AppKey("ws_front")
