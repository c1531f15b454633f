"""NICEPAY's own view of one e-wallet transaction, as its inquiry ``status`` codes describe it.

The loopback simulator runs on this flow, and auditors can set it beside the merchant's flows.
Here the customer and the wallet settle a transaction, so the flow declares them as its own
actors (:class:`SimulatorActor`) and ``settled_by`` is wider than in the merchant's flows, where
only an inquiry result or an operator may settle.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from types import MappingProxyType

from fsm.definition import Actor, Deadline, FlowDefinition, StateKind, StateSpec, transition
from fsm.flows import WALLET_EXPIRY, Wallet


class SimulatorActor(StrEnum):
    """The actors of NICEPAY's own view that a merchant never sees."""

    CUSTOMER = "customer"
    """The payer acting on a payment page."""
    WALLET_PARTNER = "wallet_partner"
    """The wallet's answer to NICEPAY."""


class NicepayState(StrEnum):
    """States of a transaction inside NICEPAY."""

    INITIATED = "initiated"
    UNPAID = "unpaid"
    PROCESSING = "processing"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    VOIDED = "voided"
    REFUNDED = "refunded"


class NicepayEvent(StrEnum):
    """Events of a transaction inside NICEPAY."""

    OPEN_PAYMENT_PAGE = "open_payment_page"
    START_PROCESSING = "start_processing"
    APPROVE = "approve"
    DECLINE = "decline"
    EXPIRE = "expire"
    CANCEL = "cancel"
    REFUND = "refund"


STATUS_CODE = MappingProxyType(
    {
        NicepayState.INITIATED: "9",
        NicepayState.UNPAID: "3",
        NicepayState.PROCESSING: "4",
        NicepayState.PAID: "0",
        NicepayState.FAILED: "8",
        NicepayState.EXPIRED: "5",
        NicepayState.VOIDED: "1",
        NicepayState.REFUNDED: "2",
    }
)
"""The inquiry ``status`` code of each state, in the general V2 table."""

S, E, A, SA = NicepayState, NicepayEvent, Actor, SimulatorActor
OPEN = (S.INITIATED, S.UNPAID, S.PROCESSING)
_EXPIRY = Deadline(
    timedelta(minutes=15),
    E.EXPIRE,
    {wallet: WALLET_EXPIRY[wallet] for wallet in WALLET_EXPIRY},
)


def _final(name: NicepayState, kind: StateKind) -> StateSpec:
    return StateSpec(
        name, kind, final=True, settlement=True, description=f"status {STATUS_CODE[name]}"
    )


NICEPAY_TRANSACTION = FlowDefinition(
    name="nicepay_transaction",
    description="One e-wallet transaction inside NICEPAY, by inquiry status code",
    wallets=tuple(Wallet),
    settled_by=frozenset({SA.CUSTOMER, SA.WALLET_PARTNER, A.TIMER, A.MERCHANT, A.OPERATOR}),
    initial=S.INITIATED,
    actors=(A.MERCHANT, A.TIMER, A.OPERATOR, SA.CUSTOMER, SA.WALLET_PARTNER),
    states=(
        StateSpec(S.INITIATED, StateKind.START, deadline=_EXPIRY, description="status 9"),
        StateSpec(S.UNPAID, StateKind.WAITING_CUSTOMER, deadline=_EXPIRY, description="status 3"),
        StateSpec(
            S.PROCESSING, StateKind.WAITING_PROVIDER, deadline=_EXPIRY, description="status 4"
        ),
        StateSpec(S.PAID, StateKind.SUCCEEDED, final=True, settlement=True, description="status 0"),
        _final(S.FAILED, StateKind.FAILED),
        _final(S.EXPIRED, StateKind.FAILED),
        _final(S.VOIDED, StateKind.REVERSED),
        _final(S.REFUNDED, StateKind.REVERSED),
    ),
    transitions=(
        transition(E.OPEN_PAYMENT_PAGE, S.INITIATED, S.UNPAID, SA.CUSTOMER),
        transition(E.START_PROCESSING, S.UNPAID, S.PROCESSING, SA.CUSTOMER, SA.WALLET_PARTNER),
        transition(E.APPROVE, OPEN, S.PAID, SA.WALLET_PARTNER, A.OPERATOR),
        transition(E.DECLINE, OPEN, S.FAILED, SA.WALLET_PARTNER, SA.CUSTOMER, A.OPERATOR),
        transition(E.EXPIRE, OPEN, S.EXPIRED, A.TIMER, A.OPERATOR),
        transition(E.CANCEL, OPEN, S.VOIDED, A.MERCHANT, A.OPERATOR),
        transition(E.CANCEL, S.PAID, S.VOIDED, A.MERCHANT, A.OPERATOR, reversal=True),
        transition(
            E.REFUND, (S.PAID, S.REFUNDED), S.REFUNDED, A.MERCHANT, A.OPERATOR, reversal=True
        ),
    ),
)
