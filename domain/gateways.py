"""Choosing the configured payment gateway (apart from the contract in domain/gateway.py, which both
implementations import)."""

from __future__ import annotations

from domain.gateway import Gateway, GatewayError
from domain.gateway_razorpay import RazorpayGateway
from domain.gateway_sandbox import SandboxGateway
from hub.settings import Settings


def gateway_for(settings: Settings) -> Gateway:
    """The configured gateway: Razorpay over HTTP, or the in-process sandbox (dev only); GatewayError
    when the sandbox is configured outside dev."""
    if settings.payment_gateway == "razorpay":
        return RazorpayGateway(settings)
    if not settings.is_dev:
        raise GatewayError("the sandbox gateway is dev-only; set PAYMENT_GATEWAY=razorpay")
    return SandboxGateway(settings)
