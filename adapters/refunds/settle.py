"""A person settles, by hand, a refund request a repair left in doubt (:func:`settle_by_hand`).

A repair leaves a request in doubt when NICEPAY's cumulative refunded total cannot say whether
its cancel took effect: its answer was lost while another cancel of the payment was open
(``lost:after_repair``), the total fits this cancel as well as another in doubt
(``repaired:in_doubt``), or NICEPAY never stated a total its repair could use
(``repaired:no_total``). Its amount stays reserved until a person, who can see each cancel in
NICEPAY's own records, says which it was. The settlement asks NICEPAY afresh first and is judged
against that answer, never against the stored total (which a lost answer leaves behind); it
closes the request's intent ``settled:refunded`` or ``settled:not_refunded`` and is recorded in
the payment's log, with who settled it and why.
"""

from __future__ import annotations

import logging
from typing import Final

from adapters.errors import (
    FieldUndefined,
    InvalidRequest,
    InvalidToken,
    MerchantNotAllowed,
    ProviderError,
    RefundNotSettleable,
)
from adapters.reconcile.deadlines import DEFAULT_LEASE
from adapters.reconcile.intents import Call
from adapters.reconcile.journal import CallIntent
from adapters.reconcile.refund_repair import (
    IN_DOUBT,
    REPAIRED_NOT_REFUNDED,
    REPAIRED_REFUNDED,
    SETTLED_NOT_REFUNDED,
    SETTLED_REFUNDED,
    repair_outcome,
    request_step,
)
from adapters.reconcile.status import HeardAnswer, StatusChecks
from adapters.refunds.request import RefundRequest
from fsm.definition import Actor
from fsm.errors import RejectReason
from fsm.model import RejectedEvent
from fsm.store.leases import claim_owner

logger = logging.getLogger(__name__)

SETTLE_REFUND: Final = "settle_refund"
"""The event a settlement is recorded under in the payment's log (nothing is applied)."""


def settle_by_hand(
    service: StatusChecks,
    request: RefundRequest,
    *,
    refunded: bool,
    reason: str,
    by: str,
) -> CallIntent:
    """Settle ``request``, left in doubt, as ``refunded`` or not, as the person ``by`` found it
    at NICEPAY, for ``reason``; its intent as settled.

    The payment is claimed as a reconciler claims it (no cancel or repair runs meanwhile), and
    NICEPAY is asked afresh; its answer is applied as any status check's (a refund it reports
    moves the payment's refunded total). A settlement that answer contradicts is refused: not
    refunded, when the total covers this cancel whatever the others in doubt took; refunded,
    when it falls short of this cancel whatever they took. An answer that states no verified,
    exact total, or NICEPAY refusing the inquiry for good, contradicts nothing: the person's
    word stands, and the log says what NICEPAY said. Settling again as before completes a
    settlement whose log entry was lost (the process stopped in between).

    Raises:
        InstanceNotFound: no such payment.
        RefundNotSettleable: the payment has no such request, or it is not in doubt (still
            open for a repair, or settled), or another cancel of the payment is open or under
            way, or NICEPAY's inquiry failed in a way that may pass (try again), or its exact
            refunded total contradicts the settlement; nothing was settled.
    """
    engine, calls = service.engine, service.calls
    engine.get(request.payment_id)
    intent = calls.by_key(request.payment_id, request.key)
    if intent is None or intent.call != Call.CANCEL:
        raise _refused(request, "there is no such refund request")
    outcome = SETTLED_REFUNDED if refunded else SETTLED_NOT_REFUNDED
    if intent.outcome == outcome and _last_settled_as(service, intent) != outcome:
        return _record(service, request, intent, was=None, reason=reason, by=by)
    if intent.outcome not in IN_DOUBT:
        found = "open, for a repair" if intent.outcome is None else f"closed {intent.outcome}"
        raise _refused(request, f"only a request left in doubt is settled by hand; it is {found}")
    owner, leases = claim_owner(), service.leases
    if not leases.claim(
        request.payment_id, owner=owner, now=engine.clock.now(), lease=DEFAULT_LEASE
    ):
        raise _refused(request, "a cancel or a reconciler holds the payment; try again shortly")
    try:
        nicepay_said = _judge(service, request, intent, refunded=refunded)
        at = engine.clock.now()
        if not calls.overrule(intent.id, closed_as=intent.outcome or "", outcome=outcome, at=at):
            raise _refused(request, "it changed meanwhile; look at it again")
    finally:
        leases.release([request.payment_id], owner=owner)
    was = intent.outcome
    return _record(service, request, intent, was=was, reason=reason, by=by, said=nicepay_said)


def _judge(
    service: StatusChecks, request: RefundRequest, intent: CallIntent, *, refunded: bool
) -> str:
    """Refuse the settlement unless NICEPAY's fresh answer leaves it to the person; what that
    answer said, for the record."""
    cancels = service.calls.still_open(instance_id=request.payment_id)
    if any(i.call == Call.CANCEL for i in cancels):
        raise _refused(request, "another cancel of the payment is open; its repair comes first")
    if refunded and request_step(service.engine, intent) is None:
        raise _refused(request, "its cancel was never sent (no request_refund step)")
    heard: list[HeardAnswer] = []
    try:
        service.check_status(request.payment_id, actor=Actor.OPERATOR, heard=heard)
    except ProviderError as error:
        name = type(error).__name__
        if error.retryable:  # it may answer shortly, and its answer may contradict the person
            raise _refused(request, f"NICEPAY's inquiry failed ({name}); try again") from error
        if isinstance(error, _OUR_SETUP):  # a wrong key or URL must not silence NICEPAY
            raise _refused(
                request,
                f"NICEPAY refused our inquiry ({name}): check the merchant key and NICEPAY's URL",
            ) from error
        return f"inquiry refused ({name})"  # for good: nothing will contradict the person
    total = heard[-1].exact_total if heard else None
    if total is None:
        return "no exact total"
    total_says = repair_outcome(service.engine, service.calls, intent, refunded=total)
    if total_says == (REPAIRED_NOT_REFUNDED if refunded else REPAIRED_REFUNDED):
        raise _refused(request, f"NICEPAY's refunded total says it is {total_says}")
    return str(total)


_OUR_SETUP = (InvalidToken, MerchantNotAllowed, InvalidRequest, FieldUndefined)
"""Refusals of the inquiry that are about our own credentials or request, not the payment."""


def _record(
    service: StatusChecks,
    request: RefundRequest,
    intent: CallIntent,
    *,
    was: str | None,
    reason: str,
    by: str,
    said: str | None = None,
) -> CallIntent:
    """Log the settlement of ``intent`` (``was`` ``None``: the entry of an earlier settlement,
    whose process stopped before it was written); the intent as it stands."""
    settled = service.calls.by_key(request.payment_id, request.key)
    if settled is None:  # the key's intent is never deleted
        raise RuntimeError(f"the intent of {request.key!r} of {request.payment_id!r} vanished")
    facts = {
        "operator": by,
        "reason": reason,
        "request_id": request.request_id,
        "intent": intent.id,
        "amount": intent.amount,
        "was": was or "unrecorded",
        "settled_as": settled.outcome,
        "nicepay_total": said or "unrecorded",
    }
    logger.warning("refund settled by hand", extra={"instance": request.payment_id, **facts})
    service.engine.record_refused(
        request.payment_id,
        SETTLE_REFUND,
        actor=Actor.OPERATOR,
        idempotency_key=f"settle:{intent.id}:{len(_notes(service, intent)) + 1}",
        reason=RejectReason.SETTLED_BY_HAND,
        detail=f"{request.key}: settled {settled.outcome} by {by}: {reason}",
        payload=facts,
    )
    return settled


def _notes(service: StatusChecks, intent: CallIntent) -> list[RejectedEvent]:
    """The intent's settlements in the payment's log, in order: one each time it was settled
    (NICEPAY's total may put a settled request back in doubt, for another)."""
    mine = f"settle:{intent.id}"
    return [
        r
        for r in service.engine.rejections(intent.instance_id)
        if r.idempotency_key == mine or r.idempotency_key.startswith(mine + ":")
    ]


def _last_settled_as(service: StatusChecks, intent: CallIntent) -> str | None:
    """What the intent's latest settlement in the log settled it as, if any."""
    notes = _notes(service, intent)
    return str(notes[-1].payload.get("settled_as")) if notes else None


def _refused(request: RefundRequest, why: str) -> RefundNotSettleable:
    return RefundNotSettleable(
        f"refund request {request.request_id!r} of {request.payment_id!r} cannot be settled "
        f"by hand: {why}",
        payment_id=request.payment_id,
        request_id=request.request_id,
    )


__all__ = ["SETTLE_REFUND", "settle_by_hand"]
