"""How a repair closes a refund request's cancel, or why it leaves it open for now.

A refund request's cancel is judged from NICEPAY's refunded total as the repair's own inquiry
stated it, verified and exact (:func:`~adapters.reconcile.refund_repair.repair_outcome`), and
closed as not refunded only once the cancel can no longer reach NICEPAY. Without such a total
(an answer with no exact ``cancelAmt``, or an inquiry NICEPAY refuses for good) the intent stays
open and the repair asks again, backing off, until :attr:`Waits.unheard` has passed since the
cancel's record: then it closes ``repaired:no_total``, its amount reserved, and a person settles
it (:func:`~adapters.refunds.settle.settle_by_hand`). Closed, it no longer keeps the payment's
other refunds out, and nobody is asked to wait on an answer NICEPAY does not give.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from adapters.reconcile.journal import CallIntent
from adapters.reconcile.passes import Repair
from adapters.reconcile.refund_repair import (
    AWAITING_CANCEL,
    REPAIRED_NO_TOTAL,
    REPAIRED_NOT_REFUNDED,
    REPAIRED_REFUNDED,
    repair_outcome,
    request_step,
)
from adapters.reconcile.status import StatusChecks

logger = logging.getLogger(__name__)

SUSPECT_HOLD = "left open: its hold runs past the longest"
"""A repair's outcome for a cancel whose hold runs past the longest a reconciler waits for
(:attr:`Waits.longest_hold`): reported as failed, for a person, and never closed on it."""


@dataclass(frozen=True)
class Waits:
    """How long a repair waits on a refund request's cancel (see ``Reconciler``)."""

    grace: timedelta
    """How long after its last chance to go out a cancel may still reach NICEPAY."""
    longest_hold: timedelta
    """The longest a cancel may hold its payment from its intent's record."""
    unheard: timedelta
    """How long from its record a cancel's repair asks for a total NICEPAY never states."""


def refund_closed(
    service: StatusChecks,
    intent: CallIntent,
    total: int | None,
    states: tuple[str, str],
    *,
    now: datetime,
    waits: Waits,
) -> str | Repair:
    """How a refund request's intent closes on NICEPAY's refunded ``total`` (as this repair's
    inquiry stated it, verified and exact), or the repair that leaves it open: without such a
    total, unless asked for long enough (:func:`unheard`), and, unless it covers the request,
    while its cancel may still go out."""
    if total is None:
        return unheard(service, intent, states, now=now, waits=waits, why="no exact total")
    closed = repair_outcome(service.engine, service.calls, intent, refunded=total)
    if closed != REPAIRED_REFUNDED and now < honoured(intent, waits.longest_hold) + waits.grace:
        return _left_waiting(intent, *states)
    if closed != REPAIRED_REFUNDED and now < intent.last_sent_by + waits.grace:
        return suspect_hold(service, intent)  # it says it may still go out: a person looks
    return closed


def unheard(
    service: StatusChecks,
    intent: CallIntent,
    states: tuple[str, str],
    *,
    now: datetime,
    waits: Waits,
    why: str,
) -> str | Repair:
    """A refund request's repair that got no verified, exact refunded total (``why``): how it
    closes (:func:`closing_unheard`), else the repair that leaves it open, its error reported."""
    closed = closing_unheard(service, intent, now=now, waits=waits, why=why)
    if closed is not None:
        return closed
    error = (
        f"intent {intent.id}: NICEPAY's inquiry gave no verified answer with an exact refunded "
        f"total (cancelAmt): {why}; the refund request stays open"
    )
    logger.error("refund repair without a usable answer", extra={"instance": intent.instance_id})
    return Repair(intent.instance_id, intent.call, *states, "open", error)


def closing_unheard(
    service: StatusChecks, intent: CallIntent, *, now: datetime, waits: Waits, why: str
) -> str | None:
    """How a refund request closes without a total, once its cancel can no longer go out:
    :data:`REPAIRED_NOT_REFUNDED` when it stopped before its step (the cancel was never sent),
    :data:`REPAIRED_NO_TOTAL` once :attr:`Waits.unheard` has passed since its record; ``None``
    while it stays open."""
    if now < honoured(intent, waits.longest_hold) + waits.grace:
        return None
    if request_step(service.engine, intent) is None:
        return REPAIRED_NOT_REFUNDED  # it stopped before its step: its cancel never went out
    if now < intent.recorded_at + waits.unheard:
        return None
    logger.error(
        "refund request closed in doubt: NICEPAY never stated its refunded total",
        extra={"instance": intent.instance_id, "intent": intent.id, "why": why},
    )
    return REPAIRED_NO_TOTAL


def honoured(intent: CallIntent, longest_hold: timedelta) -> datetime:
    """The latest a repair takes the call to have gone out: :attr:`CallIntent.last_sent_by`,
    but a hold no later than ``longest_hold`` from the intent's record (a call that left its
    intent open said when itself)."""
    if intent.left_open_at is None and intent.held_until is not None:
        return min(intent.held_until, intent.recorded_at + longest_hold)
    return intent.last_sent_by


def suspect_hold(service: StatusChecks, intent: CallIntent) -> Repair:
    """Report a cancel whose hold runs past the longest hold: nothing is changed."""
    error = (
        f"intent {intent.id}: its call holds the payment until {intent.held_until}, past the "
        f"longest hold from its record at {intent.recorded_at}: a replica's lease or clock is "
        f"off; the payment stays claimed and in doubt until a person looks"
    )
    logger.error(
        "a call holds its payment past the longest hold",
        extra={"instance": intent.instance_id, "call": intent.call, "intent": intent.id},
    )
    state = service.engine.get(intent.instance_id).state
    return Repair(intent.instance_id, intent.call, state, state, SUSPECT_HOLD, error)


def _left_waiting(intent: CallIntent, before: str, after: str) -> Repair:
    """A refund NICEPAY does not show yet, whose cancel may still reach it: the intent stays
    open (and the payment's other refunds wait) until a grace after the cancel's last chance."""
    logger.info(
        "refund not taken yet; its cancel may still arrive",
        extra={"instance": intent.instance_id, "call": intent.call, "intent": intent.id},
    )
    return Repair(intent.instance_id, intent.call, before, after, AWAITING_CANCEL)


__all__ = [
    "SUSPECT_HOLD",
    "Waits",
    "closing_unheard",
    "honoured",
    "refund_closed",
    "suspect_hold",
    "unheard",
]
