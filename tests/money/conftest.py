"""Money test fixtures: a fake Razorpay speaking its HTTP wire format on loopback, an app pointed at
it, and helpers to open, pay and drive orders."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from domain.gateway import checkout_signature, webhook_signature
from hub.settings import Settings
from tests.factories import TestUser, make_user, open_test_order

KEY_ID = "rzp_test_gigwire"
KEY_SECRET = "test-key-secret-" + "k" * 20
WEBHOOK_SECRET = "test-webhook-secret-" + "w" * 20


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


@web.middleware
async def _refusals(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except _Refused as exc:
        return web.json_response(
            {"error": {"code": "BAD_REQUEST_ERROR", "description": "refused by the test"}}, status=exc.status
        )


def _matches(request: web.Request, prefix: str) -> bool:
    return request.path.startswith(prefix) or f"{request.method} {request.path}".startswith(prefix)


@dataclass
class FakeRazorpay:
    """Razorpay's API as far as gigwire uses it.

    `fail[path_prefix] = status` makes matching calls fail (a prefix may start with a method,
    "POST /v1/payments", to spare the other methods); `fail_after[path_prefix] = status` makes
    matching refunds take effect and then answer that status (a gateway that did the work but whose
    answer was lost); `payout_status` is what new payouts report; `calls` records (method, path,
    json body, {} for a GET); `refunds` holds the refunds made, per payment id, as
    GET /v1/payments/{id}/refunds lists them."""

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    fail_after: dict[str, int] = field(default_factory=dict)
    refunds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Refunds made while `hide_refunds` is set are not listed (the gateway's view lagging behind);
    # `then_fail` is merged into `fail` once a refund is made (e.g. the listing breaks after it).
    hide_refunds: bool = False
    then_fail: dict[str, int] = field(default_factory=dict)
    payout_status: str = "processing"
    validation_active: bool = True
    url: str = ""
    # When set, calls whose path starts with `hold_path` wait for `hold` (and `entered` is set first).
    hold: asyncio.Event | None = None
    hold_path: str = ""
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_refusals])
        app.router.add_post("/v1/orders", self._order)
        app.router.add_post("/v1/payments/{id}/refund", self._refund)
        app.router.add_get("/v1/payments/{id}/refunds", self._refunds_of)
        app.router.add_post("/v1/contacts", self._contact)
        app.router.add_post("/v1/fund_accounts", self._fund_account)
        app.router.add_post("/v1/fund_accounts/validations", self._validation)
        app.router.add_post("/v1/payouts", self._payout)
        return app

    async def _check(self, request: web.Request) -> dict[str, Any]:
        expected = "Basic " + base64.b64encode(f"{KEY_ID}:{KEY_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            raise web.HTTPUnauthorized(
                text='{"error": {"code": "BAD_REQUEST_ERROR", "description": "Authentication failed"}}',
                content_type="application/json",
            )
        body: dict[str, Any] = await request.json() if request.method == "POST" else {}
        self.calls.append((request.method, request.path, body))
        if self.hold is not None and request.path.startswith(self.hold_path):
            self.entered.set()
            await self.hold.wait()
        for prefix, status in self.fail.items():
            if _matches(request, prefix):
                raise _Refused(status)
        return body

    async def _order(self, request: web.Request) -> web.StreamResponse:
        body = await self._check(request)
        return web.json_response(
            {
                "id": "order_" + secrets.token_hex(7),
                "entity": "order",
                "amount": body["amount"],
                "amount_paid": 0,
                "currency": body["currency"],
                "receipt": body["receipt"],
                "status": "created",
                "notes": body.get("notes", {}),
            }
        )

    async def _refund(self, request: web.Request) -> web.StreamResponse:
        body = await self._check(request)
        refund = {
            "id": "rfnd_" + secrets.token_hex(7),
            "entity": "refund",
            "amount": body["amount"],
            "currency": "INR",
            "payment_id": request.match_info["id"],
            "receipt": body.get("receipt"),
            "status": "pending",
            "hidden": self.hide_refunds,
        }
        self.fail.update(self.then_fail)
        self.refunds.setdefault(request.match_info["id"], []).append(refund)
        for prefix, status in self.fail_after.items():
            if _matches(request, prefix):
                raise _Refused(status)
        return web.json_response({k: v for k, v in refund.items() if k != "hidden"})

    async def _refunds_of(self, request: web.Request) -> web.StreamResponse:
        await self._check(request)
        items = [
            {k: v for k, v in r.items() if k != "hidden"}
            for r in self.refunds.get(request.match_info["id"], [])
            if not (r["hidden"] and self.hide_refunds)
        ]
        return web.json_response({"entity": "collection", "count": len(items), "items": items})

    async def _contact(self, request: web.Request) -> web.StreamResponse:
        await self._check(request)
        return web.json_response({"id": "cont_" + secrets.token_hex(7), "entity": "contact"})

    async def _fund_account(self, request: web.Request) -> web.StreamResponse:
        body = await self._check(request)
        return web.json_response(
            {"id": "fa_" + secrets.token_hex(7), "entity": "fund_account", "contact_id": body["contact_id"]}
        )

    async def _validation(self, request: web.Request) -> web.StreamResponse:
        body = await self._check(request)
        return web.json_response(
            {
                "id": "fav_" + secrets.token_hex(7),
                "entity": "fund_account.validation",
                "fund_account": body["fund_account"],
                "status": "completed",
                "results": {"account_status": "active" if self.validation_active else "invalid"},
            }
        )

    async def _payout(self, request: web.Request) -> web.StreamResponse:
        body = await self._check(request)
        return web.json_response(
            {
                "id": "pout_" + secrets.token_hex(7),
                "entity": "payout",
                "amount": body["amount"],
                "reference_id": body["reference_id"],
                "status": self.payout_status,
            }
        )


@pytest.fixture
async def razorpay(aiohttp_server: Callable[..., Any]) -> FakeRazorpay:
    """A fake Razorpay on a loopback port."""
    fake = FakeRazorpay()
    server: TestServer = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
def money_settings(settings: Settings, razorpay: FakeRazorpay) -> Settings:
    """Settings with the gateway pointed at the fake Razorpay."""
    return settings.with_(
        payment_gateway="razorpay",
        razorpay_base_url=razorpay.url,
        razorpay_key_id=KEY_ID,
        razorpay_key_secret=KEY_SECRET,
        razorpay_webhook_secret=WEBHOOK_SECRET,
    )


@pytest.fixture
async def api(
    aiohttp_client: Callable[..., Any], make_app: Callable[..., web.Application], money_settings: Settings
) -> TestClient[Any, Any]:
    """A client of the whole app, paying through the fake Razorpay."""
    overrides = {
        k: getattr(money_settings, k)
        for k in (
            "payment_gateway",
            "razorpay_base_url",
            "razorpay_key_id",
            "razorpay_key_secret",
            "razorpay_webhook_secret",
        )
    }
    client: TestClient[Any, Any] = await aiohttp_client(make_app(**overrides))
    return client


@dataclass
class Parties:
    client: TestUser
    doer: TestUser
    stranger: TestUser
    admin: TestUser


@pytest.fixture
async def parties(pool: asyncpg.Pool, money_settings: Settings) -> Parties:
    """A client, a doer, an unrelated user and an admin."""
    return Parties(
        await make_user(pool, money_settings),
        await make_user(pool, money_settings),
        await make_user(pool, money_settings),
        await make_user(pool, money_settings, roles=("doer", "client", "admin")),
    )


async def new_order(pool: asyncpg.Pool, client: TestUser, doer: TestUser, amount: int = 100_000) -> str:
    """An order opened through open_order (see tests.factories.open_test_order); its id."""
    return await open_test_order(pool, client, doer, amount)


def idem(user: TestUser, key: str | None = None) -> dict[str, str]:
    """The user's auth headers plus a fresh (or given) Idempotency-Key."""
    return {**user.headers, "Idempotency-Key": key or secrets.token_hex(8)}


async def checkout(api: TestClient[Any, Any], client: TestUser, order_id: str) -> dict[str, str]:
    """create-order, then what Razorpay's checkout would hand the client after paying."""
    r = await api.post("/api/payments/create-order", json={"orderId": order_id}, headers=idem(client))
    assert r.status == 200, await r.text()
    gateway_order_id = (await r.json())["data"]["gatewayOrderId"]
    payment_id = "pay_" + secrets.token_hex(7)
    return {
        "razorpay_order_id": gateway_order_id,
        "razorpay_payment_id": payment_id,
        "razorpay_signature": checkout_signature(KEY_SECRET, gateway_order_id, payment_id),
    }


async def paid_order(
    api: TestClient[Any, Any], pool: asyncpg.Pool, client: TestUser, doer: TestUser, amount: int = 100_000
) -> str:
    """An order funded through create-order and verify."""
    order_id = await new_order(pool, client, doer, amount)
    paid = await checkout(api, client, order_id)
    r = await api.post("/api/payments/verify", json=paid, headers=idem(client))
    assert r.status == 200, await r.text()
    return order_id


def webhook(
    event: str, entity_name: str, entity: dict[str, Any], event_id: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """A signed webhook body and its headers, as Razorpay sends them."""
    body = orjson.dumps({"entity": "event", "event": event, "payload": {entity_name: {"entity": entity}}})
    headers = {
        "X-Razorpay-Signature": webhook_signature(WEBHOOK_SECRET, body),
        "Content-Type": "application/json",
    }
    if event_id is not None:
        headers["X-Razorpay-Event-Id"] = event_id
    return body, headers


async def act(
    api: TestClient[Any, Any], user: TestUser, order_id: str, action: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST /api/orders/{id}/{action}; (status, json)."""
    r = await api.post(f"/api/orders/{order_id}/{action}", json=body or {}, headers=user.headers)
    return r.status, await r.json()
