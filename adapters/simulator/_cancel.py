"""Per-wallet cancel rules (reference §12): void, online refund or refusal, by the clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from adapters.nicepay.tokens import WIB
from adapters.simulator._config import CancelRule
from adapters.simulator._validation import Refused


class CancelOutcome(StrEnum):
    """What an accepted cancel does to a paid transaction."""

    VOID = "void"
    REFUND = "refund"


def in_blackout(rule: CancelRule, now: datetime) -> bool:
    """Whether ``now`` falls in the rule's WIB blackout window (start inclusive, end exclusive)."""
    if rule.blackout is None:
        return False
    start, end = rule.blackout
    moment = now.astimezone(WIB).time()
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end  # a window across midnight


def decide_cancel(
    rule: CancelRule, *, now: datetime, paid_at: datetime, max_age: timedelta, partial: bool
) -> CancelOutcome:
    """How a cancel of a paid transaction is carried out.

    Raises:
        Refused: 9314 in a blackout or outside every window, 9334 after ``max_age``.
    """
    if in_blackout(rule, now):
        raise Refused("9314", "no cancel requests during the wallet's blackout window")
    age = now - paid_at
    if age > max_age:
        raise Refused("9334")
    if partial:
        if rule.partial_within is not None and age < rule.partial_within:
            return CancelOutcome.REFUND
        raise Refused("9314", "partial cancel is not possible for this wallet now")
    if _may_void(rule, now, paid_at, age):
        return CancelOutcome.VOID
    if rule.refund_within is not None and age < rule.refund_within:
        return CancelOutcome.REFUND
    raise Refused("9314", "full cancel is no longer possible for this wallet")


def _may_void(rule: CancelRule, now: datetime, paid_at: datetime, age: timedelta) -> bool:
    if rule.void_same_day:
        return now.astimezone(WIB).date() == paid_at.astimezone(WIB).date()
    return rule.void_within is not None and age < rule.void_within
