"""A session's authentication expires with its access token (a short ACCESS_TOKEN_TTL): the client
is told SESSION_EXPIRING {expiresAt} a quarter of the lifetime before (60 s for long tokens), then
gets ERROR unauthorized and close 4401 at expiry; AUTHENTICATE with a fresh token of the same user
moves the expiry. On /ws and on Socket.IO, through a whole app over loopback."""

from __future__ import annotations

import asyncio
import time

import pytest

from hub.codes import UNAUTHORIZED
from hub.expiry import EXPIRY_NOTICE_S, notice_lead
from hub.keys import SETTINGS
from hub.tokens import Claims, TokenCodec
from tests.factories import TestUser
from tests.hub.conftest import Node, NodeFactory, Pair
from tests.sessions.conftest import SioClient, WsClient, sio_open

TTL = 3
SLACK = 0.6  # timers fire within this of their time on a loaded test machine


@pytest.fixture
async def short(make_node: NodeFactory) -> Node:
    return await make_node(access_token_ttl=TTL)


def _token(node: Node, user: TestUser) -> tuple[str, int]:
    """A fresh token of `user` from the node's codec (its TTL) and its exp."""
    now = int(time.time())
    return TokenCodec(node.app[SETTINGS]).issue(user.id, now=now), now + TTL


async def _ws(node: Node, token: str) -> WsClient:
    return WsClient(await node.client.ws_connect(f"/ws?token={token}"))


def test_the_notice_comes_60_s_before_or_a_quarter_of_the_lifetime() -> None:
    long = Claims("u", (), "j", issued_at=0, expires_at=7200)
    brief = Claims("u", (), "j", issued_at=0, expires_at=100)
    assert notice_lead(long) == EXPIRY_NOTICE_S == 60
    assert notice_lead(brief) == 25


async def test_ws_session_is_told_then_closed_4401_at_expiry(short: Node, pair: Pair) -> None:
    token, exp = _token(short, pair.client)
    client = await _ws(short, token)
    await client.wait_for("AUTHENTICATED")
    notice = await client.wait_for("SESSION_EXPIRING", within=TTL + SLACK)
    told_at = time.time()
    assert notice["data"] == {"expiresAt": exp * 1000}
    assert exp - TTL / 4 - SLACK <= told_at <= exp - TTL / 4 + SLACK
    await asyncio.wait_for(client.ended.wait(), TTL)
    ended_at = time.time()
    assert client.close_code == UNAUTHORIZED
    assert exp - SLACK <= ended_at <= exp + SLACK, (ended_at, exp)
    error = client.frames[-1]
    assert error["type"] == "ERROR" and error["data"]["code"] == "unauthorized", client.frames
    assert "expired" in error["data"]["message"]
    assert client.types() == ["AUTHENTICATED", "SESSION_EXPIRING", "ERROR"]


async def test_ws_reauthenticate_with_a_fresh_token_moves_the_expiry(short: Node, pair: Pair) -> None:
    token, exp = _token(short, pair.client)
    client = await _ws(short, token)
    await client.wait_for("AUTHENTICATED")
    await client.wait_for("SESSION_EXPIRING", within=TTL + SLACK)
    # Told 0.75 s before exp: a token issued now expires at least 2 s after the first one.
    fresh, fresh_exp = _token(short, pair.client)
    assert fresh_exp > exp
    mark = len(client.frames)
    await client.send("AUTHENTICATE", {"token": fresh}, ref="again")
    hello = await client.wait_for("AUTHENTICATED", after=mark)
    assert hello["ref"] == "again"
    # Past the first token's expiry the session still serves.
    await asyncio.sleep(max(exp - time.time(), 0) + SLACK)
    await client.send("PING", ref="alive")
    assert (await client.wait_for("PONG", after=mark))["ref"] == "alive"
    assert not client.ended.is_set()
    notice = await client.wait_for("SESSION_EXPIRING", within=TTL + SLACK, after=mark)
    assert notice["data"] == {"expiresAt": fresh_exp * 1000}
    await asyncio.wait_for(client.ended.wait(), TTL + SLACK)
    assert client.close_code == UNAUTHORIZED
    assert abs(time.time() - fresh_exp) <= SLACK


async def test_socketio_session_is_told_then_disconnected_at_expiry(short: Node, pair: Pair) -> None:
    token, exp = _token(short, pair.doer)
    base = str(short.client.make_url("")).rstrip("/")
    client: SioClient = await sio_open(base, token)
    notice = await client.wait_for("SESSION_EXPIRING", within=TTL + SLACK)
    assert notice == {"expiresAt": exp * 1000}
    await asyncio.wait_for(client.ended.wait(), TTL)
    assert time.time() >= exp - SLACK
    names = [name for name, _ in client.events]
    assert names == ["AUTHENTICATED", "SESSION_EXPIRING", "ERROR"], client.events
    assert client.events[-1][1]["code"] == "unauthorized"


async def test_socketio_reauthenticate_moves_the_expiry(short: Node, pair: Pair) -> None:
    token, exp = _token(short, pair.doer)
    base = str(short.client.make_url("")).rstrip("/")
    client = await sio_open(base, token)
    await client.wait_for("SESSION_EXPIRING", within=TTL + SLACK)
    fresh, fresh_exp = _token(short, pair.doer)
    assert fresh_exp > exp
    ack = await client.client.call("AUTHENTICATE", {"token": fresh}, timeout=5)
    assert ack["userId"] == pair.doer.id, ack
    await asyncio.sleep(max(exp - time.time(), 0) + SLACK)
    assert not client.ended.is_set()
    assert await client.client.call("PING", timeout=5) == {}
    await asyncio.wait_for(client.ended.wait(), TTL + SLACK)
    expiring = [d for name, d in client.events if name == "SESSION_EXPIRING"]
    assert expiring == [{"expiresAt": exp * 1000}, {"expiresAt": fresh_exp * 1000}]
    assert client.events[-1][0] == "ERROR"
