"""The payment gateway contract (Razorpay's wire format and semantics) and its signatures.

Implementations: gateway_razorpay.RazorpayGateway (HTTP to settings.razorpay_base_url) and
gateway_sandbox.SandboxGateway (in the process, dev only). `gateway_for(settings)` picks one. Gateway
objects hold no connection: each call is a short-lived request, so they are built where needed."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from hub.settings import Settings


class GatewayError(Exception):
    """The gateway refused (`definite`: it answered, nothing was done) or could not be reached or
    understood (not definite: the request may or may not have taken effect)."""

    def __init__(self, message: str, definite: bool = True) -> None:
        super().__init__(message)
        self.definite = definite


@dataclass(frozen=True)
class GatewayOrder:
    id: str
    amount: int
    currency: str
    receipt: str


@dataclass(frozen=True)
class GatewayResult:
    """The id and state of a refund, payout or account validation the gateway created."""

    id: str
    status: str
    fund_account_id: str | None = None
    account_active: bool | None = None


@dataclass(frozen=True)
class BankDetails:
    holder_name: str
    ifsc: str
    account_number: str


class Gateway(Protocol):
    """What gigwire asks of a payment gateway."""

    key_id: str

    async def create_order(
        self, *, amount: int, currency: str, receipt: str, notes: Mapping[str, str]
    ) -> GatewayOrder:
        """A new gateway order for a checkout (POST /v1/orders)."""
        ...

    async def refund(self, *, payment_id: str, amount: int, receipt: str) -> GatewayResult:
        """Refund `amount` of a captured payment (POST /v1/payments/{id}/refund)."""
        ...

    async def create_fund_account(self, *, bank: BankDetails, reference: str) -> str:
        """Register a bank account with the gateway (a contact and its fund account, RazorpayX
        POST /v1/contacts and /v1/fund_accounts) and return the fund account id. The only time
        the full account number leaves gigwire; gigwire keeps just its last four digits."""
        ...

    async def validate_account(self, *, fund_account_id: str, reference: str) -> GatewayResult:
        """A penny-drop validation of a fund account (POST /v1/fund_accounts/validations)."""
        ...

    async def payout(
        self, *, fund_account_id: str, amount: int, currency: str, reference: str
    ) -> GatewayResult:
        """Send money to a validated fund account (POST /v1/payouts, idempotent on `reference`)."""
        ...


def checkout_signature(key_secret: str, order_id: str, payment_id: str) -> str:
    """The signature the checkout hands the client: HMAC-SHA256 hex of `order_id|payment_id`."""
    return hmac.new(key_secret.encode(), f"{order_id}|{payment_id}".encode(), hashlib.sha256).hexdigest()


def webhook_signature(webhook_secret: str, body: bytes) -> str:
    """The `X-Razorpay-Signature` of a webhook body: HMAC-SHA256 hex of the raw bytes."""
    return hmac.new(webhook_secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(expected: str, given: str) -> bool:
    """Constant-time comparison of two hex signatures."""
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode())


def gateway_for(settings: Settings) -> Gateway:
    """The configured gateway: Razorpay over HTTP, or the in-process sandbox (dev only)."""
    if settings.payment_gateway == "razorpay":
        from rest.gateway_razorpay import RazorpayGateway

        return RazorpayGateway(settings)
    if not settings.is_dev:
        raise GatewayError("the sandbox gateway is dev-only; set PAYMENT_GATEWAY=razorpay")
    from rest.gateway_sandbox import SandboxGateway

    return SandboxGateway(settings)
