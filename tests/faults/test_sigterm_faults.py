"""Issue 13, fault matrix: SIGTERM while a dependency is failing. With /ws and Socket.IO sessions
open and chat flowing, one fault is injected (Redis killed, Redis frozen with SIGSTOP, PostgreSQL
down, PostgreSQL restarting, the payment gateway not answering a request in flight, the other hub
SIGKILLed), then the web process gets SIGTERM: it must exit 0 within SHUTDOWN_TIMEOUT every time
(docs/operations.md, "Stopping the web process"), with at most one error line for the fault."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import socketio

from hub.db import create_pool
from tests.factories import open_test_order
from tests.faults.conftest import Order, Party
from tests.faults.processes import PrivatePostgres, WebProcess
from tests.services import RedisServer

BOUND_S = 5
SLACK_S = 3.0  # interpreter exit and this test's polling, on a loaded machine
GATEWAY = {
    "PAYMENT_GATEWAY": "razorpay",
    "RAZORPAY_KEY_ID": "rzp_test_faults",
    "RAZORPAY_KEY_SECRET": "faults-key-secret",
    "RAZORPAY_WEBHOOK_SECRET": "faults-webhook-secret",
}
FAULTS = [
    "redis_killed",
    "redis_frozen",
    "postgres_down",
    "postgres_restarting",
    "gateway_timeout",
    "peer_killed",
]


@pytest.fixture
async def silent_gateway() -> AsyncIterator[str]:
    """A gateway that accepts connections and reads requests but never answers (a timeout)."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while await reader.read(65536):
                pass
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()


async def sio_session(url: str, token: str) -> socketio.AsyncClient:
    """An authenticated Socket.IO session (python-socketio over WebSocket)."""
    client = socketio.AsyncClient(reconnection=False)
    hello = asyncio.get_running_loop().create_future()
    client.on("AUTHENTICATED", lambda data=None: hello.done() or hello.set_result(data))
    await client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    await asyncio.wait_for(hello, 10)
    return client


async def create_order_in_flight(url: str, order: Order, pg: PrivatePostgres) -> asyncio.Task[int]:
    """A POST /api/payments/create-order waiting on the (silent) gateway."""
    pool = await create_pool(pg.dsn("gigwire"), min_size=1, max_size=2)
    try:
        unpaid = await open_test_order(pool, order.client, order.doer)
    finally:
        await pool.close()

    async def post() -> int:
        headers = {**order.client.headers, "Idempotency-Key": secrets.token_hex(8)}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{url}/api/payments/create-order", json={"orderId": unpaid}, headers=headers) as resp,
        ):
            return resp.status

    task = asyncio.create_task(post())
    await asyncio.sleep(1.0)  # in the handler, waiting on the gateway
    assert not task.done(), "create-order answered without waiting on the gateway"
    return task


@pytest.mark.parametrize("fault", FAULTS)
async def test_sigterm_during_a_fault_exits_0_within_the_bound(
    fault: str,
    private_pg: PrivatePostgres,
    private_redis: RedisServer,
    order: Order,
    silent_gateway: str,
    stop_parties: asyncio.Event,
    tmp_path: Path,
) -> None:
    dsn = private_pg.dsn("gigwire")
    extra = {"SHUTDOWN_TIMEOUT": str(BOUND_S), "RAZORPAY_BASE_URL": silent_gateway, **GATEWAY}
    hub = WebProcess(tmp_path, "hub-a", dsn, private_redis.url, **extra)
    peer = WebProcess(tmp_path, "hub-b", dsn, private_redis.url, **extra) if fault == "peer_killed" else None
    restarting: asyncio.Task[None] | None = None
    pg_down = False
    try:
        await asyncio.gather(*(p.ready() for p in (hub, peer) if p is not None))
        urls = [hub.url] if peer is None else [hub.url, peer.url]
        client = Party(order.client, order.order_id, [hub.url])
        doer = Party(order.doer, order.order_id, urls[::-1])
        runs = [asyncio.create_task(p.run(stop_parties)) for p in (client, doer)]
        sio = await sio_session(hub.url, order.client.token)
        async with asyncio.timeout(20):
            while not (client.live and doer.live):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        for _ in range(5):
            await client.chat()
            await doer.chat()
        in_flight: asyncio.Task[int] | None = None

        # The fault.
        if fault == "redis_killed":
            private_redis.stop()
        elif fault == "redis_frozen":
            assert private_redis.proc is not None
            os.kill(private_redis.proc.pid, signal.SIGSTOP)
        elif fault in ("postgres_down", "postgres_restarting"):
            private_pg.stop("fast")
            pg_down = True
            if fault == "postgres_restarting":

                async def back() -> None:
                    await asyncio.sleep(1.5)
                    await asyncio.to_thread(private_pg.start)

                restarting = asyncio.create_task(back())
        elif fault == "gateway_timeout":
            in_flight = await create_order_in_flight(hub.url, order, private_pg)
        elif fault == "peer_killed":
            assert peer is not None
            peer.kill()
        for _ in range(5):  # traffic meets the fault
            await client.chat()
            await doer.chat()
        await asyncio.sleep(0.5)

        code, taken = await hub.sigterm(BOUND_S + SLACK_S + 30)
        assert code == 0, (fault, code, hub.tail())
        assert taken <= BOUND_S + SLACK_S, f"{fault}: stopped {taken:.1f} s after SIGTERM (bound {BOUND_S} s)"
        assert hub.log_path.read_text().splitlines()[-1] == "gigwire stopped"
        errors = hub.errors()
        assert len(errors) <= 1, [(e["msg"], e.get("exc", "")[-300:]) for e in errors]
        if in_flight is not None:  # the request in flight was answered or cut, not left hanging
            with contextlib.suppress(aiohttp.ClientError):
                assert await asyncio.wait_for(in_flight, 5) in (502, 503, 504)
        stop_parties.set()
        for task in runs:
            task.cancel()
        with contextlib.suppress(Exception):
            await sio.disconnect()
    finally:
        hub.kill()
        if peer is not None:
            peer.kill()
        if restarting is not None:
            with contextlib.suppress(Exception):
                await restarting
        elif pg_down:
            private_pg.start()  # the next case needs it
