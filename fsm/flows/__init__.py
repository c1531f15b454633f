"""The built-in merchant-side flows, each validated (and its table compiled) when imported."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from fsm.definition import FlowDefinition
from fsm.errors import UnknownFlow
from fsm.flows._common import GUARDS, RENAMED_ACTORS, WALLET_EXPIRY, Wallet
from fsm.flows._events import event_types
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

EVENT_TYPES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        EWALLET_PAYMENT.name: event_types(EWALLET_PAYMENT, "payment"),
        ASTRAPAY_PAYMENT.name: event_types(ASTRAPAY_PAYMENT, "payment"),
        ASTRAPAY_LINK.name: event_types(ASTRAPAY_LINK, "link"),
    }
)
"""The events the built-in flows emit, by flow and target state (``Engine(event_types=...)``):
``payment.paid``, ``payment.failed``, ``payment.expired``, ``payment.refunded``,
``link.linked``..."""


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
    "EVENT_TYPES",
    "EWALLET_PAYMENT",
    "FLOWS",
    "GUARDS",
    "RENAMED_ACTORS",
    "WALLET_EXPIRY",
    "AstrapayPaymentEvent",
    "AstrapayPaymentState",
    "LinkEvent",
    "LinkState",
    "PaymentEvent",
    "PaymentState",
    "Wallet",
    "event_types",
    "get_flow",
]
