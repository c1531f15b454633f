"""Inquiry ``status`` codes to flow events: one table for every wallet (reference §6.3).

The current V2 e-wallet table is the same for every wallet. The older per-wallet subsets only say
which codes a wallet usually reports, not which are invalid, so every code maps for every wallet.
The one exception the reference documents is AstraPay's ``8``: a refund when the payment was paid
before, a failure otherwise. A code outside the table maps to nothing: the caller records and
counts it and applies no transition, and the status check's deadline backs off.

Both payment flows name these events alike, so one table serves them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from fsm.flows import AstrapayPaymentState, PaymentEvent, PaymentState, Wallet

_E = PaymentEvent
INQUIRY_STATUS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "0": _E.CONFIRM_PAYMENT,
        "1": _E.VOID_PAYMENT,
        "2": _E.REFUND_PAYMENT,
        "3": _E.REPORT_PENDING,
        "4": _E.REPORT_PENDING,
        "5": _E.EXPIRE_PAYMENT,
        "8": _E.FAIL_PAYMENT,
        "9": _E.REPORT_PENDING,
    }
)
"""Every inquiry code and the event it fires, for every wallet."""

AFTER_PAYMENT: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {Wallet.ASTRAPAY: MappingProxyType({"8": _E.REFUND_PAYMENT})}
)
"""The documented per-wallet exceptions: codes that mean another event once a payment was paid."""

PENDING_EVENTS = frozenset({_E.REPORT_PENDING})
PAID_BEFORE = frozenset(
    {
        PaymentState.PAID,
        PaymentState.ORDER_CONFIRMED,
        PaymentState.REFUNDED,
        AstrapayPaymentState.PAID,
        AstrapayPaymentState.CUSTOMER_UPDATED,
        AstrapayPaymentState.REFUNDED,
    }
)
"""States in which a payment has been paid (and perhaps partly refunded since)."""


def event_for_status(wallet: Wallet | str, status: str, *, current_state: str) -> str | None:
    """The event an inquiry ``status`` fires for a payment in ``current_state``, or ``None``.

    ``None`` means the code is not in the table: record it, count it, and change nothing.
    """
    if current_state in PAID_BEFORE:
        exceptions = AFTER_PAYMENT.get(wallet, {})
        if status in exceptions:
            return exceptions[status]
    return INQUIRY_STATUS.get(status)
