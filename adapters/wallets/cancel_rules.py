"""The cancel rules NICEPAY documents per wallet (reference §12, pitfall 8), as one table.

They are checked before a cancel is sent, with the engine's clock and the time the payment was
paid, so a cancel NICEPAY would refuse, or one that is a manual refund rather than an API
cancel, never leaves the merchant:

- OVO: in full only, and only on the WIB day it was paid.
- DANA: no cancel requests 00:00-01:00 WIB; none after 30 days.
- LinkAja: a partial cancel, or any cancel after 30 days, is a manual refund.
- ShopeePay and AstraPay: undocumented, so the cancel is sent and NICEPAY's code reported.
- Any wallet: nothing after 90 days (``9334``).

NICEPAY may still refuse what passes here; its code then ends the request as declined.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from types import MappingProxyType
from typing import Final

from adapters.nicepay.tokens import WIB
from fsm.flows import Wallet

MAX_CANCEL_AGE: Final = timedelta(days=90)
"""Any cancel is refused after this (9334)."""


@dataclass(frozen=True)
class WalletCancelRules:
    """What one wallet allows of a cancel sent through the API."""

    partial: bool = True
    """Whether part of the amount may be cancelled through the API."""
    same_wib_day: bool = False
    """Only on the WIB calendar day of the payment (OVO)."""
    within: timedelta | None = None
    """How long after the payment a cancel stays an API cancel; ``None``: the 90 days only."""
    blackout: tuple[time, time] | None = None
    """A WIB window (start inclusive, end exclusive) in which no cancel may be requested."""


CANCEL_RULES: Final[Mapping[Wallet, WalletCancelRules]] = MappingProxyType(
    {
        Wallet.OVO: WalletCancelRules(partial=False, same_wib_day=True),
        Wallet.DANA: WalletCancelRules(within=timedelta(days=30), blackout=(time(0), time(1))),
        Wallet.LINKAJA: WalletCancelRules(partial=False, within=timedelta(days=30)),
        Wallet.SHOPEEPAY: WalletCancelRules(),
        Wallet.ASTRAPAY: WalletCancelRules(),
    }
)


@dataclass(frozen=True)
class CancelRefusal:
    """Which rule refuses a cancel, and why."""

    rule: str
    detail: str


def cancel_refusal(
    wallet: str, *, now: datetime, paid_at: datetime, partial: bool
) -> CancelRefusal | None:
    """The documented rule that refuses this cancel, or ``None`` when it may be sent.

    Args:
        wallet: the payment's wallet.
        now: the time of the request (the engine's clock).
        paid_at: when the payment was paid.
        partial: whether less than the whole amount is cancelled.
    """
    rules = CANCEL_RULES.get(Wallet(wallet), WalletCancelRules())
    at, paid = now.astimezone(WIB), paid_at.astimezone(WIB)
    age = now - paid_at
    if rules.blackout is not None and _within(at.time(), rules.blackout):
        start, end = (moment.strftime("%H:%M") for moment in rules.blackout)
        return CancelRefusal("blackout", f"{wallet} takes no cancel from {start} to {end} WIB")
    if age > MAX_CANCEL_AGE:
        return CancelRefusal("max_age", f"no cancel after {MAX_CANCEL_AGE.days} days")
    if partial and not rules.partial:
        return CancelRefusal("full_only", f"{wallet} cancels only in full through the API")
    if rules.same_wib_day and at.date() != paid.date():
        return CancelRefusal("same_day", f"{wallet} cancels only on the WIB day of payment")
    if rules.within is not None and age >= rules.within:
        days = rules.within.days
        return CancelRefusal("window", f"{wallet} takes no API cancel after {days} days")
    return None


def _within(moment: time, window: tuple[time, time]) -> bool:
    start, end = window
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end  # a window across midnight


__all__ = ["CANCEL_RULES", "MAX_CANCEL_AGE", "CancelRefusal", "WalletCancelRules", "cancel_refusal"]
