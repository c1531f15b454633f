"""Before a cancel goes out, NICEPAY's refunded total must be one the call journal accounts for.

A repair closes a cancel ``repaired:not_refunded`` when the cancel can no longer reach NICEPAY
by the clocks it reads: a grace after its hold ran out. Those are the clocks of two machines,
the cancel's replica and the reconciler's; a replica whose clock runs behind by more than the
grace makes its hold look lapsed while its cancel is still on its way, and a replica that then
stops never stores that the cancel took effect. The journal would count the amount as free
again, and a second request for it would refund it twice.

So each cancel asks NICEPAY first, inside its recorded intent and under its hold (no other
cancel of the payment is open, no repair runs): the total it reports is at most what the
payment's other cancels took or may have taken (:data:`~adapters.reconcile.refund_repair.TAKEN`).
Above that, every cancel of the payment closed as not refunded, by a repair or by a person, is
put back in doubt, its amount reserved again, and the cancel is not sent: a repair or a person
settles them first. When none was closed so, the excess was refunded outside the library (at
NICEPAY's dashboard, say): it is counted against what is left, and the cancel may go. A total
NICEPAY does not state exactly proves nothing either way and lets the cancel go (the reference
promises ``cancelAmt`` only with a refund); an answer about another transaction, or an inquiry
that fails, sends nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from adapters.reconcile.intents import Call
from adapters.reconcile.journal import CallIntent, CallJournal
from adapters.reconcile.refund_repair import (
    REPAIRED_IN_DOUBT,
    REPAIRED_NOT_REFUNDED,
    SETTLED_NOT_REFUNDED,
    TAKEN,
)
from adapters.reconcile.status import HeardAnswer, Inquirer, check_status
from fsm.engine import Engine

logger = logging.getLogger(__name__)

INQUIRY_FAILED: Final = "inquiry_failed"
"""Why a cancel closed ``unsent``: the inquiry before it failed, so nothing was sent."""
TOTALS_DISAGREE: Final = "totals_disagree"
"""Why a cancel closed ``refused``: NICEPAY's total was above what the journal accounts for."""


FREED: Final = (REPAIRED_NOT_REFUNDED, SETTLED_NOT_REFUNDED)
"""The outcomes that free a cancel's amount without NICEPAY's answer to the cancel itself."""


class UnverifiedAnswer(Exception):
    """NICEPAY's answer was not about the payment: it proves nothing, so nothing is sent."""


@dataclass(frozen=True)
class Disagreement:
    """NICEPAY's refunded total, the most the payment's recorded cancels accounted for, and
    the intents put back in doubt (none: the excess was refunded outside the library)."""

    nicepay_total: int
    accounted: int
    put_in_doubt: tuple[int, ...]


def accounted_for(cancels: Sequence[CallIntent]) -> int:
    """The most NICEPAY may have refunded by ``cancels``: those that took or may have taken."""
    return sum(int(i.amount or 0) for i in cancels if i.call == Call.CANCEL and i.outcome in TAKEN)


def check_total(
    engine: Engine, calls: CallJournal, inquirer: Inquirer, payment_id: str, *, intent_id: int
) -> Disagreement | None:
    """Ask NICEPAY for the payment's refunded total before the cancel of ``intent_id`` goes out;
    the disagreement, if its total is above what the payment's other cancels account for.

    The answer is applied as any status check's. On a disagreement, the cancels a repair closed
    as not refunded are put back in doubt (``repaired:in_doubt``) and the error is logged.

    Raises:
        ProviderError: the inquiry failed; nothing may be sent.
        UnverifiedAnswer: the answer's tXid, referenceNo or amount disagree with the payment's.
    """
    heard: list[HeardAnswer] = []
    check_status(engine, calls, inquirer, payment_id, heard=heard)
    if heard and not heard[-1].verified:
        raise UnverifiedAnswer(payment_id)
    total = heard[-1].exact_total if heard else None
    others = [i for i in calls.of_instance(payment_id) if i.id != intent_id]
    accounted = accounted_for(others)
    if total is None or total <= accounted:
        return None
    doubted = []
    for intent in others:
        if intent.call == Call.CANCEL and intent.outcome in FREED:
            at = calls.clock.now()
            closed_as = intent.outcome or ""
            if calls.overrule(intent.id, closed_as=closed_as, outcome=REPAIRED_IN_DOUBT, at=at):
                doubted.append(intent.id)
    logger.error(
        "NICEPAY refunded more than the call journal accounts for",
        extra={
            "instance": payment_id,
            "nicepay_total": total,
            "accounted": accounted,
            "put_in_doubt": doubted,
        },
    )
    return Disagreement(total, accounted, tuple(doubted))


__all__ = [
    "FREED",
    "INQUIRY_FAILED",
    "TOTALS_DISAGREE",
    "Disagreement",
    "UnverifiedAnswer",
    "accounted_for",
    "check_total",
]
