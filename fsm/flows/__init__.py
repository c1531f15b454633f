"""The built-in merchant-side flows, each validated (and its table compiled) when imported."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from fsm.definition import FlowDefinition
from fsm.errors import UnknownFlow
from fsm.flows._common import GUARDS, WALLET_EXPIRY, Wallet
from fsm.flows.astrapay_link import ASTRAPAY_LINK, LinkEvent, LinkState
from fsm.flows.astrapay_payment import (
    ASTRAPAY_PAYMENT,
    AstrapayPaymentEvent,
    AstrapayPaymentState,
)
from fsm.flows.ewallet_payment import EWALLET_PAYMENT, PaymentEvent, PaymentState

FLOWS: Mapping[str, FlowDefinition] = MappingProxyType(
    {flow.name: flow for flow in (EWALLET_PAYMENT, ASTRAPAY_LINK, ASTRAPAY_PAYMENT)}
)
"""Every built-in flow by name: the merchant's payment flows, for ``Engine(store, flows=FLOWS)``."""


def get_flow(name: str) -> FlowDefinition:
    """The built-in flow called ``name``.

    Raises:
        UnknownFlow: no built-in flow has that name; the error lists the known ones.
    """
    try:
        return FLOWS[name]
    except KeyError:
        raise UnknownFlow(name, sorted(FLOWS)) from None


__all__ = [
    "ASTRAPAY_LINK",
    "ASTRAPAY_PAYMENT",
    "EWALLET_PAYMENT",
    "FLOWS",
    "GUARDS",
    "WALLET_EXPIRY",
    "AstrapayPaymentEvent",
    "AstrapayPaymentState",
    "LinkEvent",
    "LinkState",
    "PaymentEvent",
    "PaymentState",
    "Wallet",
    "get_flow",
]
