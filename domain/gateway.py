"""The payment gateway contract (Razorpay's wire format and semantics) and its signatures.

Implementations: gateway_razorpay.RazorpayGateway (HTTP to settings.razorpay_base_url) and
gateway_sandbox.SandboxGateway (in the process, dev only); `domain.gateways.gateway_for(settings)`
picks one. Gateway objects hold no connection: each call is a short-lived request, so they are
built where needed."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


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
    """The id and state of a refund, payout or account validation the gateway created (`amount`
    is set for refunds listed by `refunds_of`)."""

    id: str
    status: str
    fund_account_id: str | None = None
    account_active: bool | None = None
    amount: int | None = None


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

    async def refunds_of(self, payment_id: str) -> list[GatewayResult]:
        """Every refund the gateway holds for a payment, with amount and status
        (GET /v1/payments/{id}/refunds)."""
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


class RefundUnconfirmed(GatewayError):
    """A refund request whose outcome is unknown (the gateway timed out or failed) and whose effect
    could not be seen afterwards either: it may or may not exist. Never definite."""

    def __init__(self, message: str) -> None:
        super().__init__(message, definite=False)


def _full_refund(refunds: list[GatewayResult], amount: int) -> GatewayResult | None:
    # A failed refund gave nothing back; pending and processed ones did (or will).
    for r in refunds:
        if r.status != "failed" and r.amount is not None and r.amount >= amount:
            return r
    return None


async def refund_once(gateway: Gateway, *, payment_id: str, amount: int, receipt: str) -> GatewayResult:
    """Refund `amount` of a payment unless the gateway already holds such a refund, and return the
    refund either way. Raises GatewayError (definite: nothing was done, e.g. the gateway refused or
    the existing refunds could not be listed before asking) or RefundUnconfirmed (the refund call
    had no clear answer and the refund is not visible afterwards: the caller must not treat the
    money as kept nor as returned, and retrying will find the refund if it was made)."""
    try:
        existing = _full_refund(await gateway.refunds_of(payment_id), amount)
    except GatewayError as exc:
        # Nothing was sent yet, so nothing changed whatever the listing's failure was.
        raise GatewayError(f"could not list the payment's refunds ({exc})") from None
    if existing is not None:
        return existing
    try:
        return await gateway.refund(payment_id=payment_id, amount=amount, receipt=receipt)
    except GatewayError as exc:
        if exc.definite:
            raise
        first = exc
    # The gateway may have made the refund without us hearing it: look before saying anything.
    try:
        existing = _full_refund(await gateway.refunds_of(payment_id), amount)
    except GatewayError as exc:
        raise RefundUnconfirmed(f"{first}; then listing refunds failed ({exc})") from None
    if existing is None:
        raise RefundUnconfirmed(f"{first}; no refund visible yet")
    return existing


def checkout_signature(key_secret: str, order_id: str, payment_id: str) -> str:
    """The signature the checkout hands the client: HMAC-SHA256 hex of `order_id|payment_id`."""
    return hmac.new(key_secret.encode(), f"{order_id}|{payment_id}".encode(), hashlib.sha256).hexdigest()


def webhook_signature(webhook_secret: str, body: bytes) -> str:
    """The `X-Razorpay-Signature` of a webhook body: HMAC-SHA256 hex of the raw bytes."""
    return hmac.new(webhook_secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(expected: str, given: str) -> bool:
    """Constant-time comparison of two hex signatures."""
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode())
