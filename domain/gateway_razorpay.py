"""The Razorpay gateway over HTTP: Basic auth key_id:key_secret against settings.razorpay_base_url.

Orders and refunds are Razorpay's payment API (/v1/orders, /v1/payments/{id}/refund[s]); penny-drop
validation and payouts are RazorpayX's (/v1/fund_accounts/validations, /v1/payouts), with the
business account number from RAZORPAYX_ACCOUNT_NUMBER. A request gets one session and a 15 s
limit; any non-2xx answer or transport failure is a GatewayError naming what the gateway said."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import aiohttp

from domain.gateway import BankDetails, GatewayError, GatewayOrder, GatewayResult
from hub.settings import Settings

_TIMEOUT = aiohttp.ClientTimeout(total=15)


class RazorpayGateway:
    """The Gateway contract spoken to Razorpay (or anything speaking its wire format)."""

    def __init__(self, settings: Settings) -> None:
        self.key_id = settings.razorpay_key_id
        token = base64.b64encode(f"{settings.razorpay_key_id}:{settings.razorpay_key_secret}".encode())
        self._auth = {"Authorization": "Basic " + token.decode()}
        self._base = settings.razorpay_base_url.rstrip("/")
        self._account_number = settings.razorpayx_account_number

    async def _post(
        self, path: str, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        return await self._request("POST", path, body, headers, expect="id")

    async def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None = None,
        *,
        expect: str,
    ) -> dict[str, Any]:
        """One request; the answer must be a 2xx JSON object holding `expect`."""
        json = dict(body) if body is not None else None
        try:
            async with (
                aiohttp.ClientSession(timeout=_TIMEOUT, headers=self._auth) as session,
                session.request(method, self._base + path, json=json, headers=headers) as response,
            ):
                data = await response.json(content_type=None)
                if response.status >= 300 or not isinstance(data, dict) or expect not in data:
                    error = data.get("error", {}) if isinstance(data, dict) else {}
                    text = error.get("description") or error.get("code") or f"HTTP {response.status}"
                    # A 4xx is a refusal; a 5xx or a strange body leaves the outcome unknown.
                    raise GatewayError(f"{path}: {text}", definite=400 <= response.status < 500)
                return data
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise GatewayError(f"{path}: {type(exc).__name__}", definite=False) from None

    async def create_order(
        self, *, amount: int, currency: str, receipt: str, notes: Mapping[str, str]
    ) -> GatewayOrder:
        """POST /v1/orders {amount, currency, receipt, notes}."""
        data = await self._post(
            "/v1/orders", {"amount": amount, "currency": currency, "receipt": receipt, "notes": dict(notes)}
        )
        if data.get("amount") != amount or data.get("currency") != currency or not data.get("id"):
            raise GatewayError("/v1/orders: the gateway answered a different amount or currency")
        return GatewayOrder(str(data["id"]), amount, currency, receipt)

    async def refund(self, *, payment_id: str, amount: int, receipt: str) -> GatewayResult:
        """POST /v1/payments/{id}/refund {amount, receipt}."""
        data = await self._post(f"/v1/payments/{payment_id}/refund", {"amount": amount, "receipt": receipt})
        return GatewayResult(str(data["id"]), str(data.get("status", "pending")))

    async def refunds_of(self, payment_id: str) -> list[GatewayResult]:
        """GET /v1/payments/{id}/refunds: a collection {count, items: [{id, amount, status}]}."""
        path = f"/v1/payments/{payment_id}/refunds"
        data = await self._request("GET", path, None, expect="items")
        items = data["items"]
        if not isinstance(items, list):
            raise GatewayError(f"{path}: items is not a list", definite=False)
        try:
            return [
                GatewayResult(str(i["id"]), str(i.get("status", "pending")), amount=int(i["amount"]))
                for i in items
            ]
        except (KeyError, TypeError, ValueError):
            raise GatewayError(f"{path}: a refund without id or amount", definite=False) from None

    async def create_fund_account(self, *, bank: BankDetails, reference: str) -> str:
        """POST /v1/contacts then POST /v1/fund_accounts (account_type bank_account)."""
        contact = await self._post(
            "/v1/contacts", {"name": bank.holder_name, "type": "vendor", "reference_id": reference}
        )
        data = await self._post(
            "/v1/fund_accounts",
            {
                "contact_id": contact["id"],
                "account_type": "bank_account",
                "bank_account": {
                    "name": bank.holder_name,
                    "ifsc": bank.ifsc,
                    "account_number": bank.account_number,
                },
            },
        )
        return str(data["id"])

    async def validate_account(self, *, fund_account_id: str, reference: str) -> GatewayResult:
        """POST /v1/fund_accounts/validations: a 100-paise penny drop to the fund account."""
        data = await self._post(
            "/v1/fund_accounts/validations",
            {
                "account_number": self._account_number,
                "fund_account": {"id": fund_account_id},
                "amount": 100,
                "currency": "INR",
                "notes": {"reference": reference},
            },
        )
        results = data.get("results") or {}
        status = str(data.get("status", "created"))
        active = None if status != "completed" else results.get("account_status") == "active"
        return GatewayResult(str(data["id"]), status, fund_account_id=fund_account_id, account_active=active)

    async def payout(
        self, *, fund_account_id: str, amount: int, currency: str, reference: str
    ) -> GatewayResult:
        """POST /v1/payouts, with X-Payout-Idempotency so a retried request pays once."""
        data = await self._post(
            "/v1/payouts",
            {
                "account_number": self._account_number,
                "fund_account_id": fund_account_id,
                "amount": amount,
                "currency": currency,
                "mode": "IMPS",
                "purpose": "payout",
                "queue_if_low_balance": True,
                "reference_id": reference,
            },
            headers={"X-Payout-Idempotency": reference},
        )
        return GatewayResult(str(data["id"]), str(data.get("status", "processing")))
