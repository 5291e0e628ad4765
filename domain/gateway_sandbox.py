"""The sandbox gateway (PAYMENT_GATEWAY=sandbox, dev only): answers inside the process, offline.

It keeps no state but the refunds it made (so `refunds_of` can list them): gateway orders, payments,
refunds, payouts and validations get fresh ids, and the
sandbox checkout (rest/payments.py, POST /api/dev/sandbox/checkout) signs its answer with the key
secret exactly as Razorpay's checkout does, so the real verify path runs unchanged. Refunds, payouts
and validations complete at once; account numbers ending in 0000 fail validation, so the failure
path can be tried too."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from domain.gateway import BankDetails, GatewayOrder, GatewayResult, checkout_signature
from hub.settings import Settings

# payment id -> the refunds made of it in this process (dev only, so never large).
_REFUNDS: dict[str, list[GatewayResult]] = {}


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(7)}"


class SandboxGateway:
    """The Gateway contract, answered locally."""

    def __init__(self, settings: Settings) -> None:
        self.key_id = settings.razorpay_key_id
        self._secret = settings.razorpay_key_secret

    async def create_order(
        self, *, amount: int, currency: str, receipt: str, notes: Mapping[str, str]
    ) -> GatewayOrder:
        """A new sandbox order id."""
        return GatewayOrder(_id("order"), amount, currency, receipt)

    async def refund(self, *, payment_id: str, amount: int, receipt: str) -> GatewayResult:
        """A refund that is processed at once."""
        result = GatewayResult(_id("rfnd"), "processed", amount=amount)
        _REFUNDS.setdefault(payment_id, []).append(result)
        return result

    async def refunds_of(self, payment_id: str) -> list[GatewayResult]:
        """The refunds this process made of the payment."""
        return list(_REFUNDS.get(payment_id, []))

    async def create_fund_account(self, *, bank: BankDetails, reference: str) -> str:
        """A fund account id that remembers (in itself) whether the account will validate."""
        return _id("fa") + ("x" if bank.account_number.endswith("0000") else "")

    async def validate_account(self, *, fund_account_id: str, reference: str) -> GatewayResult:
        """A completed validation: active unless the account number ended in 0000."""
        active = not fund_account_id.endswith("x")
        return GatewayResult(_id("fav"), "completed", fund_account_id=fund_account_id, account_active=active)

    async def payout(
        self, *, fund_account_id: str, amount: int, currency: str, reference: str
    ) -> GatewayResult:
        """A payout that is processed at once."""
        return GatewayResult(_id("pout"), "processed")

    def checkout(self, gateway_order_id: str) -> dict[str, str]:
        """Complete a checkout of `gateway_order_id`: what the checkout SDK hands the client."""
        payment_id = _id("pay")
        return {
            "razorpay_order_id": gateway_order_id,
            "razorpay_payment_id": payment_id,
            "razorpay_signature": checkout_signature(self._secret, gateway_order_id, payment_id),
        }
