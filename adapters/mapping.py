"""Inquiry ``status`` codes to flow events, through one explicit table per wallet.

The codes differ by wallet (reference §6.3): OVO reports ``0 1 8 9``, DANA ``0 1 2 3 5 8 9``,
LinkAja ``0 1 2 3 8 9``, ShopeePay ``0 1 2 3 4 5 8 9``, and AstraPay ``0 3 8`` where ``8`` is a
refund. A code outside a wallet's table maps to nothing: the caller records it, applies no
transition, and lets the status check's deadline schedule another inquiry.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from fsm.flows import AstrapayPaymentEvent, AstrapayPaymentState, PaymentEvent, Wallet

_E = PaymentEvent
_GENERAL: Final = {
    "0": _E.CONFIRM_PAYMENT,
    "1": _E.VOID_PAYMENT,
    "2": _E.REFUND_PAYMENT,
    "3": _E.REPORT_PENDING,
    "4": _E.REPORT_PENDING,
    "5": _E.EXPIRE_PAYMENT,
    "8": _E.FAIL_PAYMENT,
    "9": _E.REPORT_PENDING,
}


def _subset(*codes: str) -> Mapping[str, str]:
    return MappingProxyType({code: _GENERAL[code] for code in codes})


INQUIRY_STATUS: Final[Mapping[Wallet, Mapping[str, str]]] = MappingProxyType(
    {
        # §14 says an unanswered OVO push may also end as 5, so OVO accepts it beside its subset.
        Wallet.OVO: _subset("0", "1", "5", "8", "9"),
        Wallet.DANA: _subset("0", "1", "2", "3", "5", "8", "9"),
        Wallet.LINKAJA: _subset("0", "1", "2", "3", "8", "9"),
        Wallet.SHOPEEPAY: _subset("0", "1", "2", "3", "4", "5", "8", "9"),
        Wallet.ASTRAPAY: MappingProxyType(
            {
                "0": AstrapayPaymentEvent.CONFIRM_PAYMENT,
                "3": AstrapayPaymentEvent.REPORT_PENDING,
                "8": AstrapayPaymentEvent.FAIL_PAYMENT,  # or a refund: see event_for_status
            }
        ),
    }
)
"""Every wallet's inquiry codes and the event each one fires."""

PENDING_EVENTS = frozenset({_E.REPORT_PENDING, AstrapayPaymentEvent.REPORT_PENDING})
_PAID_BEFORE = frozenset(
    {
        AstrapayPaymentState.PAID,
        AstrapayPaymentState.CUSTOMER_UPDATED,
        AstrapayPaymentState.REFUNDED,
    }
)


def event_for_status(wallet: Wallet | str, status: str, *, current_state: str) -> str | None:
    """The event an inquiry ``status`` fires for a payment in ``current_state``, or ``None``.

    AstraPay's ``8`` is a refund when the payment was paid before and a failure otherwise.
    ``None`` means the code is unknown for this wallet: record it and change nothing.
    """
    table = INQUIRY_STATUS.get(Wallet(wallet), {})
    event = table.get(status)
    if wallet == Wallet.ASTRAPAY and status == "8" and current_state in _PAID_BEFORE:
        return AstrapayPaymentEvent.REFUND_PAYMENT
    return event
