"""A person settles, by hand, a refund request a repair left in doubt (:func:`settle_by_hand`).

A repair leaves a request in doubt when NICEPAY's cumulative refunded total cannot say whether
its cancel took effect: its answer was lost while another cancel of the payment was open
(``lost:after_repair``), or the total fits this cancel as well as another in doubt
(``repaired:in_doubt``). Its amount stays reserved until a person, who can see each cancel in
NICEPAY's own records, says which it was. The settlement closes the request's intent
``settled:refunded`` or ``settled:not_refunded`` and is recorded in the payment's log, with who
settled it and why.
"""

from __future__ import annotations

import logging
from typing import Final

from adapters.errors import RefundNotSettleable
from adapters.reconcile.intents import Call
from adapters.reconcile.journal import CallIntent, CallJournal
from adapters.reconcile.refund_repair import (
    IN_DOUBT,
    REPAIRED_NOT_REFUNDED,
    REPAIRED_REFUNDED,
    SETTLED_NOT_REFUNDED,
    SETTLED_REFUNDED,
    repair_outcome,
)
from adapters.refunds.request import RefundRequest
from fsm.definition import Actor
from fsm.engine import Engine
from fsm.errors import RejectReason

logger = logging.getLogger(__name__)

SETTLE_REFUND: Final = "settle_refund"
"""The event a settlement is recorded under in the payment's log (nothing is applied)."""


def settle_by_hand(
    engine: Engine,
    calls: CallJournal,
    request: RefundRequest,
    *,
    refunded: bool,
    reason: str,
    by: str,
) -> CallIntent:
    """Settle ``request``, left in doubt, as ``refunded`` or not, as the person ``by`` found it
    at NICEPAY, for ``reason``; its intent as settled.

    A settlement the refunded total contradicts is refused: not refunded, when the total
    covers this cancel whatever the others in doubt took; refunded, when it falls short of
    this cancel whatever they took.

    Raises:
        InstanceNotFound: no such payment.
        RefundNotSettleable: the payment has no such request, or it is not in doubt (still
            open for a repair, or settled), or the total contradicts the settlement; nothing
            was changed.
    """
    engine.get(request.payment_id)
    intent = calls.by_key(request.payment_id, request.key)
    if intent is None or intent.call != Call.CANCEL:
        raise _refused(request, "there is no such refund request")
    if intent.outcome not in IN_DOUBT:
        found = "open, for a repair" if intent.outcome is None else f"closed {intent.outcome}"
        raise _refused(request, f"only a request left in doubt is settled by hand; it is {found}")
    total_says = repair_outcome(engine, calls, intent)
    if total_says == (REPAIRED_NOT_REFUNDED if refunded else REPAIRED_REFUNDED):
        raise _refused(request, f"NICEPAY's refunded total says it is {total_says}")
    outcome = SETTLED_REFUNDED if refunded else SETTLED_NOT_REFUNDED
    at = engine.clock.now()
    if not calls.overrule(intent.id, closed_as=intent.outcome or "", outcome=outcome, at=at):
        raise _refused(request, "it changed meanwhile; look at it again")
    facts = {
        "operator": by,
        "reason": reason,
        "request_id": request.request_id,
        "intent": intent.id,
        "amount": intent.amount,
        "was": intent.outcome,
        "settled_as": outcome,
    }
    logger.warning("refund settled by hand", extra={"instance": request.payment_id, **facts})
    engine.record_refused(
        request.payment_id,
        SETTLE_REFUND,
        actor=Actor.OPERATOR,
        idempotency_key=f"settle:{intent.id}",
        reason=RejectReason.SETTLED_BY_HAND,
        detail=f"{request.key}: settled {outcome} by {by}: {reason}",
        payload=facts,
    )
    settled = calls.by_key(request.payment_id, request.key)
    if settled is None:  # the key's intent is never deleted
        raise RuntimeError(f"the intent of {request.key!r} of {request.payment_id!r} vanished")
    return settled


def _refused(request: RefundRequest, why: str) -> RefundNotSettleable:
    return RefundNotSettleable(
        f"refund request {request.request_id!r} of {request.payment_id!r} cannot be settled "
        f"by hand: {why}",
        payment_id=request.payment_id,
        request_id=request.request_id,
    )


__all__ = ["SETTLE_REFUND", "settle_by_hand"]
