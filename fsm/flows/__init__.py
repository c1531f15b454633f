"""The built-in merchant-side flows, each validated (and its table compiled) when imported.

Every released version of a flow stays here beside the newest, in a module of its own
(``<flow>.py`` holds version 1; a later one goes in ``<flow>_v<N>.py``), with the
:class:`~fsm.definition.FlowMigration` that moves in-flight instances to it. New instances are
pinned to the newest version; instances and logged steps of an older one keep its definition.
``released.json`` locks each released version's fingerprint: ``ewallet-fsm check`` fails when a
released version's content changed without a new version number.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from fsm.definition import FlowCatalog, FlowDefinition, FlowMigration
from fsm.errors import UnknownFlow
from fsm.flows._common import GUARDS, RENAMED_ACTORS, WALLET_EXPIRY, Wallet
from fsm.flows._events import event_types
from fsm.flows._follow_up import follow_up_states
from fsm.flows.astrapay_link import ASTRAPAY_LINK, LinkEvent, LinkState
from fsm.flows.astrapay_link_v2 import ASTRAPAY_LINK_TO_V2, ASTRAPAY_LINK_V2
from fsm.flows.astrapay_payment import (
    ASTRAPAY_PAYMENT,
    AstrapayPaymentEvent,
    AstrapayPaymentState,
)
from fsm.flows.astrapay_payment_v2 import ASTRAPAY_PAYMENT_TO_V2, ASTRAPAY_PAYMENT_V2
from fsm.flows.ewallet_payment import EWALLET_PAYMENT, PaymentEvent, PaymentState
from fsm.flows.ewallet_payment_v2 import EWALLET_PAYMENT_TO_V2, EWALLET_PAYMENT_V2

RELEASED: tuple[FlowDefinition, ...] = (
    EWALLET_PAYMENT,
    ASTRAPAY_LINK,
    ASTRAPAY_PAYMENT,
    EWALLET_PAYMENT_V2,
    ASTRAPAY_LINK_V2,
    ASTRAPAY_PAYMENT_V2,
)
"""Every released version of every built-in flow. The unsuffixed names are version 1; version 2
has the merchant, not the timer, confirm each outcome to the customer."""
MIGRATIONS: tuple[FlowMigration, ...] = (
    EWALLET_PAYMENT_TO_V2,
    ASTRAPAY_LINK_TO_V2,
    ASTRAPAY_PAYMENT_TO_V2,
)
"""The declared migrations between released versions: v1 to v2 leaves each unfinished instance
in its state."""
CONFIRMATIONS: Mapping[str, str] = MappingProxyType(
    {
        EWALLET_PAYMENT.name: PaymentEvent.CONFIRM_ORDER.value,
        ASTRAPAY_PAYMENT.name: AstrapayPaymentEvent.UPDATE_CUSTOMER.value,
        ASTRAPAY_LINK.name: LinkEvent.CONFIRM_REGISTRATION.value,
    }
)
"""The event by which the merchant records, per flow, that it told the customer the outcome."""

RELEASE_LOCK = Path(__file__).resolve().parent / "released.json"
"""The fingerprint each released version shipped with (see :mod:`fsm.definition.release`)."""

FLOWS = FlowCatalog(RELEASED, MIGRATIONS)
"""Every built-in flow by name (its newest version), every released version kept beside it:
the merchant's payment flows, for ``Engine(store, flows=FLOWS)``."""

EVENT_TYPES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        EWALLET_PAYMENT.name: event_types(EWALLET_PAYMENT_V2, "payment"),
        ASTRAPAY_PAYMENT.name: event_types(ASTRAPAY_PAYMENT_V2, "payment"),
        ASTRAPAY_LINK.name: event_types(ASTRAPAY_LINK_V2, "link"),
    }
)
"""The events the built-in flows emit, by flow and target state (``Engine(event_types=...)``):
``payment.paid``, ``payment.failed``, ``payment.expired``, ``payment.refunded``,
``payment.confirmed``, ``link.linked``, ``link.confirmed``... Each version's states are the
newest's, so one map serves every version."""


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
    "ASTRAPAY_LINK_TO_V2",
    "ASTRAPAY_LINK_V2",
    "ASTRAPAY_PAYMENT",
    "ASTRAPAY_PAYMENT_TO_V2",
    "ASTRAPAY_PAYMENT_V2",
    "CONFIRMATIONS",
    "EVENT_TYPES",
    "EWALLET_PAYMENT",
    "EWALLET_PAYMENT_TO_V2",
    "EWALLET_PAYMENT_V2",
    "FLOWS",
    "GUARDS",
    "MIGRATIONS",
    "RELEASED",
    "RELEASE_LOCK",
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
    "follow_up_states",
    "get_flow",
]
