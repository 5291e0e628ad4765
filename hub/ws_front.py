"""This process's /ws front: the open connections (authenticated or not), their liveness sweep,
the batching of their writes, and what every connection needs (hub, token codec, settings,
metrics). A connection arrives through hub.door (a fresh TCP connection whose first request is the
upgrade) or through the aiohttp route of hub.realtime (an upgrade on a kept-alive connection), and
`accept` takes its transport over in the same way."""

from __future__ import annotations

import asyncio
import logging

from hub import feed, revoke, websocket
from hub.codes import GOING_AWAY
from hub.hub import Hub
from hub.metrics import HubMetrics
from hub.session import close_all
from hub.session_flow import Realm
from hub.settings import Settings
from hub.tokens import TokenCodec
from hub.ws_conn import WsConnection

log = logging.getLogger("gigwire.ws")


class WsFront:
    """This process's /ws side: the open connections (authenticated or not), their liveness sweep,
    and what every connection needs (hub, token codec, settings, metrics)."""

    def __init__(self, hub: Hub, tokens: TokenCodec, settings: Settings, metrics: HubMetrics) -> None:
        self.hub = hub
        self.tokens = tokens
        self.settings = settings
        self.metrics = metrics
        self.realm = Realm(hub, tokens, settings.ws_auth_timeout, revoke.guard(hub))
        self.connections: set[WsConnection] = set()
        self._pending: list[WsConnection] = []  # connections holding bytes to write this iteration
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def accepting(self) -> bool:
        return self.hub.accepting

    def accept(
        self,
        transport: asyncio.Transport,
        upgrade: websocket.Upgrade,
        rest: bytes = b"",
        handover: asyncio.BaseProtocol | None = None,
    ) -> WsConnection:
        """Take over `transport` for an upgrade request already read (`rest`: bytes that followed
        it): answer 101 and serve it. `handover` is the protocol that had the transport, told of
        the connection's loss when it happens."""
        conn = WsConnection(self, handover)
        transport.set_protocol(conn)
        transport.write(upgrade.response())
        conn.connection_made(transport)
        conn.start(upgrade.query.get("token"), feed.parse_since(upgrade.query.get("sinceFeedSeq")))
        transport.resume_reading()  # in case the protocol before paused it
        if rest:
            conn.data_received(rest)
        return conn

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="gigwire-ws-heartbeat")

    def close_waiting(self) -> None:
        """Close the connections not (yet) sessions with 1001; the hub closes its sessions."""
        for conn in list(self.connections):
            if not conn.registered:
                conn.close(GOING_AWAY, "server going away: reconnect")

    async def stop(self, grace_s: float = 5.0) -> None:
        """Close every connection still open with 1001 (the hub has closed its sessions by now;
        this catches any that registered meanwhile), wait for them, and stop the liveness sweep."""
        await close_all(list(self.connections), grace_s)
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)

    async def _sweep(self) -> None:
        """Every WS_HEARTBEAT seconds: a connection heard from since the last sweep is marked
        unheard; one unheard for a whole interval is pinged; one still unheard after its ping is
        cut (its session is removed when the transport reports the loss)."""
        while True:
            await asyncio.sleep(self.settings.ws_heartbeat_s)
            for conn in list(self.connections):
                try:
                    conn.beat()
                except Exception:
                    log.exception("liveness check failed", extra={"session": conn.session_id})

    def schedule_flush(self, conn: WsConnection) -> None:
        """Write `conn`'s buffered bytes at the end of this loop iteration, with every other
        connection's (one callback for all)."""
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(conn)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for conn in pending:
            try:
                conn.flush()
            except Exception:  # one broken transport must not stall the others
                log.exception("write failed", extra={"session": conn.session_id})
                conn.abort()
