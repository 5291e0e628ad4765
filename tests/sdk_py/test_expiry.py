"""Token renewal before expiry: with 12-second access tokens the server sends SESSION_EXPIRING 3 s
before the token's end; the SDK refreshes through /api/auth/refresh and re-AUTHENTICATEs on the
same connection, which then outlives the first token (and the second) without a reconnect."""

from __future__ import annotations

import asyncio

import pytest
from gigwire_client import (
    Authenticated,
    ChatMessage,
    GigwireClient,
    RefreshingTokens,
    RestClient,
    SessionExpiring,
    StateChange,
    Tokens,
)

from tests.sdk_py.conftest import Gigwire, Parties
from tests.sdk_py.test_client import Recorder

TTL_S = 12


@pytest.fixture
def cluster_env() -> dict[str, str]:
    return {"ACCESS_TOKEN_TTL": f"{TTL_S}s"}


async def test_session_renewed_in_place_before_the_token_expires(gigwire: Gigwire, parties: Parties) -> None:
    rest = RestClient(gigwire.hubs[0].url, gigwire.http)
    # margin 1 s: the renewal is the server's SESSION_EXPIRING's doing, not the provider's own clock.
    tokens = RefreshingTokens(rest, Tokens(parties.doer.token, parties.doer.refresh, TTL_S), margin_s=1)
    client = GigwireClient(gigwire.hubs[1].url, tokens)
    seen = Recorder(client)
    async with client:
        await client.wait_connected(10)
        await client.subscribe(parties.order_id)
        await seen.until(lambda: len(seen.of(SessionExpiring)) >= 2, within=3 * TTL_S)
        await asyncio.sleep(1.0)
        # Still the same connection, and it works: a message is stored and echoed.
        ack = await client.send(parties.order_id, "after two renewals")
        await seen.until(lambda: any(m.id == ack.id for m in seen.of(ChatMessage)))
    hellos = seen.of(Authenticated)
    assert len(hellos) >= 3 and len({h.session_id for h in hellos}) == 1
    states = [e.state for e in seen.of(StateChange)]
    assert states == ["connecting", "connected", "disconnected", "closed"]  # one connection, closed by us
    assert tokens.current.token != parties.doer.token
