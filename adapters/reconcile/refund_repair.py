"""What a repair concludes about a refund request's cancel, and what a late answer still says.

A refund request's cancel is repaired from NICEPAY's refunded total, which every cancel it took
adds up to; a request learns which part is its own from the total before it and the payment's
other cancels. A cancel that outlasts the repair's wait may still answer after the repair closed
its intent: what it learnt is kept (:func:`keep_late_answer`). When the total cannot tell this
cancel from another in doubt, the request stays in doubt, its amount reserved, until a later
repair can tell (:func:`reopen_in_doubt`) or a person settles it.
"""

from __future__ import annotations

import logging
from typing import Final

from adapters.reconcile.intents import Call, OpenCall
from adapters.reconcile.journal import CallIntent, CallJournal
from fsm.definition import Actor
from fsm.engine import Engine
from fsm.errors import RejectReason
from fsm.model import TransitionRecord
from fsm.refunds import REQUEST_REFUND

logger = logging.getLogger(__name__)

REPAIRED_REFUNDED: Final = "repaired:refunded"
"""A refund request's intent, closed by a repair: NICEPAY's refunded total covers it."""
REPAIRED_NOT_REFUNDED: Final = "repaired:not_refunded"
"""A refund request's intent, closed by a repair: it took nothing, and its amount is free."""
ANSWERED_AFTER_REPAIR: Final = "answered:after_repair"
"""A refund request's intent that a repair closed before NICEPAY accepted its cancel."""
LOST_AFTER_REPAIR: Final = "lost:after_repair"
"""A refund request's intent a repair closed before its cancel's answer was lost, which could
not be opened again (another cancel was open): its amount stays reserved, in doubt, until a
repair opens it again once no other cancel of the payment is open or in doubt
(:func:`reopen_in_doubt`)."""
REPAIRED_IN_DOUBT: Final = "repaired:in_doubt"
"""A refund request's intent, closed by a repair that cannot tell whether it took effect:
NICEPAY's cumulative total fits its cancel having taken the money as well as another in-doubt
cancel of the payment having taken it. Its amount stays reserved, for a person
(:func:`~adapters.refunds.settle.settle_by_hand`), or for a repair once no other cancel of the
payment is in doubt."""
REPAIRED_NO_TOTAL: Final = "repaired:no_total"
"""A refund request's intent, closed by a repair that asked NICEPAY long enough (the
reconciler's ``longest_unheard``) for a refunded total it never stated, verified and exact (or
whose inquiry NICEPAY refused for good): its amount stays reserved, for a person
(:func:`~adapters.refunds.settle.settle_by_hand`); no repair opens it again."""
SETTLED_REFUNDED: Final = "settled:refunded"
"""A refund request's intent a person settled as refunded, from NICEPAY's own records."""
SETTLED_NOT_REFUNDED: Final = "settled:not_refunded"
"""A refund request's intent a person settled as not refunded: its amount is free again."""
ACCEPTED: Final = frozenset(
    {"answered", REPAIRED_REFUNDED, ANSWERED_AFTER_REPAIR, SETTLED_REFUNDED}
)
"""A refund request's intent outcomes whose amount NICEPAY took."""
IN_DOUBT: Final = frozenset({LOST_AFTER_REPAIR, REPAIRED_IN_DOUBT, REPAIRED_NO_TOTAL})
"""A refund request's intent outcomes whose amount NICEPAY may have taken: closed, reserved,
and settled only by a later repair or a person."""
REOPENED: Final = IN_DOUBT - {REPAIRED_NO_TOTAL}
"""The outcomes in doubt a repair opens again once NICEPAY's total may settle them: not a
request whose repair never heard a total, which a person settles."""
TAKEN: Final = ACCEPTED | IN_DOUBT
"""A refund request's intent outcomes whose amount NICEPAY took, or may have taken with
nothing left to find out whether: they count against what is left to refund."""
AWAITING_CANCEL: Final = "left open: its cancel may still arrive"
"""A repair's outcome when NICEPAY shows no refund yet, but the cancel may still reach it: it
went out (or could have, before its claim ran out) less than a grace ago."""
LEFT_OPEN: Final = "left open: its call ended meanwhile"
"""A repair's outcome when the intent's own call left it open, or renewed its hold to send,
while the repair was asking NICEPAY: what the repair learnt may predate the call, so the next
pass asks again."""


def repair_outcome(engine: Engine, calls: CallJournal, intent: CallIntent, *, refunded: int) -> str:
    """After the reconciler's inquiry, whether a refund request's cancel took effect.

    NICEPAY's refunded total is what every cancel it took adds up to. The request's step holds
    the total before it, and the payment's other cancels that took effect, or may have (in
    doubt), are known: the others took at least those that took and at most those plus the
    ones in doubt. This cancel took effect when the total covers the most the others may have
    taken plus its amount, and took nothing when it falls short of the least plus its amount;
    in between the total cannot tell this cancel from one in doubt, and it is left in doubt
    (:data:`REPAIRED_IN_DOUBT`). Counting the others keeps a cancel that landed late, after
    this request began, from being taken for this one. ``refunded`` is NICEPAY's total as the
    caller's own inquiry, verified, stated it exactly (never the stored total, which a lost or
    unverified answer leaves behind). Without the step the cancel was never sent: the request
    is recorded after its intent and before the call.
    """
    step = request_step(engine, intent)
    if step is None:
        return REPAIRED_NOT_REFUNDED
    text = str(step.payload.get("refunded_before") or "0")
    before = int(text) if text.isdigit() else 0
    cancels = [i for i in calls.of_instance(intent.instance_id) if i.call == Call.CANCEL]
    others = [i for i in cancels if i.id != intent.id]
    took = sum(int(i.amount or 0) for i in others if i.outcome in ACCEPTED)
    maybe = sum(int(i.amount or 0) for i in others if i.outcome in IN_DOUBT)
    # The total before may have counted the ones in doubt, which are only reserved.
    least, most = max(before - maybe, took), max(before, took) + maybe
    amount = int(intent.amount or 0)
    # NICEPAY's total counts every cancel it took, so a total short of the least the others
    # took plus this amount means this cancel took nothing.
    if refunded >= most + amount:
        return REPAIRED_REFUNDED
    return REPAIRED_NOT_REFUNDED if refunded < least + amount else REPAIRED_IN_DOUBT


def request_step(engine: Engine, intent: CallIntent) -> TransitionRecord | None:
    """The ``request_refund`` step of the refund request whose cancel ``intent`` records; none
    when its process stopped before it: the cancel, sent only after it, never went out."""
    history = engine.history(intent.instance_id)
    return next(
        (r for r in history if r.event == REQUEST_REFUND and r.idempotency_key == intent.call_key),
        None,
    )


def keep_late_answer(
    engine: Engine, calls: CallJournal, call: OpenCall, instance_id: str, call_key: str
) -> None:
    """Keep what a cancel learnt after a repair had closed its intent (:attr:`OpenCall.overtaken`).

    The repair asked NICEPAY while the cancel was still under way and may have found nothing
    refunded yet. An accepted cancel closes its intent :data:`ANSWERED_AFTER_REPAIR` instead,
    so its amount is taken again; a lost answer opens it again for a later repair, whose inquiry
    comes after the cancel. Either way the answer is logged as an error and recorded in the
    payment's log as a refused ``cancel`` (``late_answer``), for a person to look at.
    """
    intent = calls.by_key(instance_id, call_key)
    if intent is None or intent.outcome is None:  # opened again meanwhile: a repair settles it
        return
    answer = "answered" if call.answered else call.outcome  # None: the answer was lost
    if intent.outcome in _TAKEN_IF_ANSWERED and call.answered:  # in doubt no longer: it took
        calls.overrule(
            intent.id, closed_as=intent.outcome, outcome=ANSWERED_AFTER_REPAIR, at=calls.clock.now()
        )
    elif intent.outcome == REPAIRED_NOT_REFUNDED and (call.answered or answer is None):
        # NICEPAY took, or may have taken, what the repair counted as free again.
        overruled = ANSWERED_AFTER_REPAIR if call.answered else None
        at = calls.clock.now()
        if not calls.overrule(intent.id, closed_as=intent.outcome, outcome=overruled, at=at):
            # Another cancel of the payment is open now: this one cannot be opened beside it,
            # so its amount stays reserved, in doubt, for a person to settle.
            calls.overrule(intent.id, closed_as=intent.outcome, outcome=LOST_AFTER_REPAIR, at=at)
    facts = {
        "intent": intent.id,
        "call_key": call_key,
        "amount": intent.amount,
        "closed_as": intent.outcome,
        "answer": answer or "lost",
    }
    logger.error(
        "cancel answered after a repair closed its intent", extra={"instance": instance_id, **facts}
    )
    engine.record_refused(
        instance_id,
        Call.CANCEL,
        actor=Actor.PROVIDER_RESPONSE,
        idempotency_key=f"late-answer:{intent.id}",
        reason=RejectReason.LATE_ANSWER,
        detail=f"{call_key}: the cancel ended {answer or 'lost'} after a repair had closed its "
        f"intent as {intent.outcome}",
        payload=facts,
    )


_TAKEN_IF_ANSWERED = frozenset({REPAIRED_IN_DOUBT, REPAIRED_NO_TOTAL, SETTLED_NOT_REFUNDED})
"""Outcomes a cancel's own late acceptance overrules: NICEPAY took it, whatever was concluded."""


def reopen_in_doubt(calls: CallJournal, *, limit: int) -> list[CallIntent]:
    """Open again, for a repair, the refund requests' intents closed in doubt that a repair may
    now settle, once no other cancel of their payment is open or in doubt (a person settled
    it, say); those opened.

    Each is stamped as left open when it was closed: its call was done with it by then, so a
    repair's inquiry from now on speaks for it. Two in doubt beside each other stay closed: the
    total could not tell them apart, and only a person can.
    """
    opened = []
    for intent in calls.closed_alone(REOPENED, beside=IN_DOUBT, limit=limit):
        closed_at = intent.finished_at or calls.clock.now()
        # The database refuses a second open cancel, should one have been recorded meanwhile.
        if calls.overrule(intent.id, closed_as=intent.outcome or "", outcome=None, at=closed_at):
            logger.info(
                "refund in doubt opened again for a repair",
                extra={"instance": intent.instance_id, "intent": intent.id},
            )
            opened.append(intent)
    return opened


__all__ = [
    "ACCEPTED",
    "ANSWERED_AFTER_REPAIR",
    "AWAITING_CANCEL",
    "IN_DOUBT",
    "LEFT_OPEN",
    "LOST_AFTER_REPAIR",
    "REOPENED",
    "REPAIRED_IN_DOUBT",
    "REPAIRED_NOT_REFUNDED",
    "REPAIRED_NO_TOTAL",
    "REPAIRED_REFUNDED",
    "SETTLED_NOT_REFUNDED",
    "SETTLED_REFUNDED",
    "TAKEN",
    "keep_late_answer",
    "reopen_in_doubt",
    "repair_outcome",
    "request_step",
]
