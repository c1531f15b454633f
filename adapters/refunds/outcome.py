"""What a refund request's answer says: its status, read from its call intent."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from adapters.reconcile.journal import CallIntent
from adapters.reconcile.refund_repair import ACCEPTED, IN_DOUBT, TAKEN

RESERVED = TAKEN
"""Intent outcomes whose amount counts against what is left to refund: taken, or perhaps
taken, with nothing left to find out whether."""


class RefundStatus(StrEnum):
    """Where a refund request stands."""

    PENDING = "pending"
    """Recorded, no answer stored yet: its call may still be under way."""
    IN_DOUBT = "in_doubt"
    """Its answer was lost (or is overdue): the reconciler's inquiry settles it."""
    SUCCEEDED = "succeeded"
    """NICEPAY accepted the cancel."""
    DECLINED = "declined"
    """NICEPAY refused it (``provider_code`` says why); nothing was refunded."""
    FAILED = "failed"
    """It never took effect: the reconciler's inquiry or a person found so, or it was never
    sent (``provider_code`` then says why: ``hold_lost``, ``inquiry_failed``; ask again under a
    new request id)."""


@dataclass(frozen=True)
class Refund:
    """One refund request's outcome, and the payment as it stands."""

    request_id: str
    payment_id: str
    amount: str
    status: RefundStatus
    provider_code: str | None
    state: str
    """The payment's state."""
    refunded_amount: str
    """The payment's refunded total as NICEPAY confirmed it (``"0"`` before any)."""


def refund_status(intent: CallIntent, *, in_doubt: bool) -> tuple[RefundStatus, str | None]:
    """The status of the request whose cancel ``intent`` records, and NICEPAY's refusal code;
    an open intent is ``in_doubt`` when its answer was lost or is overdue, else pending."""
    outcome = intent.outcome
    if outcome is None:
        return (RefundStatus.IN_DOUBT if in_doubt else RefundStatus.PENDING), None
    if outcome in IN_DOUBT:  # closed, with nothing left to find out: a person settles it
        return RefundStatus.IN_DOUBT, None
    if outcome in ACCEPTED:
        return RefundStatus.SUCCEEDED, None
    kind, _, code = outcome.partition(":")
    if kind in ("refused", "failed"):
        return RefundStatus.DECLINED, code or None
    if kind == "unsent":  # never sent: why (hold_lost, inquiry_failed) says whether to ask again
        return RefundStatus.FAILED, code or None
    return RefundStatus.FAILED, None


__all__ = ["ACCEPTED", "RESERVED", "Refund", "RefundStatus", "refund_status"]
