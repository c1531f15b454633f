"""Refunds and voids as recorded, idempotent requests: what ``PaymentService.cancel`` runs.

Each request carries its caller's id (``request_id``, an idempotency key as Stripe's). Its cancel
call is recorded as an intent under ``refund:<request_id>`` before anything is sent, and the
database holds one intent per key and payment: the same request again, from any replica, before
or after the first one finished, is answered from that intent and sends nothing.

A new request goes through, in order:

1. its input, the payment's state (the flow must allow ``request_refund``), the amount against
   what is left to refund (the paid amount less the larger of the confirmed refunded total and
   what NICEPAY accepted), and the wallet's documented cancel rules
   (:mod:`adapters.wallets.cancel_rules`); a refusal is a typed error and nothing is stored;
2. the intent, exclusive per payment, so two cancels of one payment never overlap, recorded
   with a claim on the payment (as a reconciler claims one) that keeps every reconciler from
   repairing it until the cancel is done (a reconciler holding it refuses the request:
   ``InstanceBusy``); what is left is checked again against the requests that finished
   meanwhile, and a request that no longer fits closes its intent ``refused:exceeds_payment``;
3. the ``request_refund`` step in the payment's log (amount, request id, reason, who asked);
4. the cancel: NICEPAY's refusal ends the request declined (``refused:<code>``, its amount no
   longer reserved); a lost answer leaves it in doubt, for the reconciler's inquiry;
5. a status check, whose void or refund binds the payment's refunded total.

A cancel that outlasts its claim may find its intent closed by a repair that came first; what
it learnt still counts (:func:`~adapters.reconcile.recovery.keep_late_answer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from adapters.errors import (
    CallKeyTaken,
    CancelNotAllowed,
    InvalidRefundRequest,
    ProviderError,
    RefundExceedsPayment,
    RefundRequestConflict,
)
from adapters.nicepay.client import NicepayClient
from adapters.nicepay.messages import amount_string
from adapters.reconcile.deadlines import reconciler_id
from adapters.reconcile.intents import CALL_LEASE, INTENT_GRACE, Call, OpenCall, recorded_call
from adapters.reconcile.journal import CallIntent, CallJournal, Hold
from adapters.reconcile.recovery import ANSWERED_AFTER_REPAIR, REPAIRED_REFUNDED, keep_late_answer
from adapters.reconcile.status import check_status
from adapters.wallets.cancel_rules import cancel_refusal
from fsm.definition import Actor, FlowDefinition
from fsm.engine import Engine
from fsm.errors import InvalidInstanceData, TransitionNotAllowed
from fsm.model import Instance, TransitionRecord
from fsm.refunds import REQUEST_REFUND

MAX_REQUEST_ID: Final = 64
MAX_REASON: Final = 255
"""``cancelMsg`` is AN 255."""
MAX_REQUESTER: Final = 100
REQUESTERS: Final = frozenset({Actor.MERCHANT, Actor.OPERATOR})

EXCEEDS_PAYMENT: Final = "exceeds_payment"
NOT_REFUNDABLE: Final = "not_refundable"
_ACCEPTED = frozenset({"answered", REPAIRED_REFUNDED, ANSWERED_AFTER_REPAIR})
"""Intent outcomes whose amount NICEPAY took: they count against what is left to refund."""


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
    """The reconciler's inquiry found that it never took effect."""


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


@dataclass(frozen=True)
class RefundRequest:
    """A checked refund request (see :func:`refund_request`)."""

    payment_id: str
    request_id: str
    amount: str | None
    """``None``: whatever is left to refund."""
    reason: str
    requested_by: str | None
    actor: Actor

    @property
    def key(self) -> str:
        """The key of its cancel intent and of its ``request_refund`` step."""
        return f"refund:{self.request_id}"


def refund_request(
    payment_id: str,
    *,
    request_id: str,
    amount: str | int | None = None,
    reason: str | None = None,
    requested_by: str | None = None,
    actor: Actor = Actor.MERCHANT,
) -> RefundRequest:
    """Check a refund request's input.

    Raises:
        InvalidRefundRequest: a field is malformed; nothing was stored.
    """

    def refuse(problem: str) -> InvalidRefundRequest:
        return InvalidRefundRequest(problem, payment_id=payment_id, request_id=str(request_id))

    if not _printable_word(request_id, MAX_REQUEST_ID):
        raise refuse(f"request_id must be 1-{MAX_REQUEST_ID} printable ASCII characters, no spaces")
    if not _printable_text(reason or "", MAX_REASON):
        raise refuse(f"reason must be printable text of at most {MAX_REASON} characters")
    if requested_by is not None and not _printable_text(requested_by, MAX_REQUESTER, empty=False):
        raise refuse(f"requested_by must be 1-{MAX_REQUESTER} printable characters")
    if actor not in REQUESTERS:
        raise refuse(f"a refund is requested by the merchant or an operator, not {actor}")
    try:
        checked = _checked_amount(amount)
    except ValueError as error:
        raise refuse(str(error)) from None
    return RefundRequest(payment_id, request_id, checked, reason or "", requested_by, actor)


class Refunds:
    """Carries out refund requests for one engine, call journal and NICEPAY client."""

    def __init__(
        self,
        engine: Engine,
        calls: CallJournal,
        client: NicepayClient,
        *,
        lease: timedelta = CALL_LEASE,
    ) -> None:
        """Bind the engine (state, log), the journal of calls, and the client that cancels;
        each cancel holds its payment against the reconcilers for at most ``lease`` (positive:
        :class:`~adapters.service.PaymentService` checks it)."""
        self.engine = engine
        self.calls = calls
        self.client = client
        self.lease = lease

    def request(self, req: RefundRequest) -> Refund:
        """Carry out ``req`` once; a repeat is answered from the first one.

        Raises:
            InstanceNotFound: no such payment.
            InvalidInstanceData: the payment has no tXid yet.
            RefundRequestConflict: the request id was used with another amount.
            CancelNotAllowed: the payment's state or a documented cancel rule refuses it.
            RefundExceedsPayment: it asks for more than is left to refund.
            CallInDoubt: another cancel of the payment has no stored answer yet; nothing was
                sent. Ask again once the reconciler has settled it.
            InstanceBusy: a reconciler is acting on the payment; nothing was stored or sent.
                Ask again shortly.
        """
        # The intent first, then the payment: an intent is finished only after its answer's
        # transition is committed, so the payment read after it is at least as new.
        known = self.calls.by_key(req.payment_id, req.key)
        payment = self.engine.get(req.payment_id)
        if known is not None:
            return self._answer(req, known, payment, lost=False)
        amount, partial = self._plan(payment, req)
        asked = {"tXid": payment.tx_id, "amt": amount, "cancelType": "2" if partial else "1"}
        call: OpenCall | None = None
        latest: Instance | None = None
        lost = False
        try:
            with recorded_call(
                self.calls,
                payment,
                Call.CANCEL,
                request=asked,
                amount=amount,
                call_key=req.key,
                hold=Hold(f"cancel:{reconciler_id()}", self.lease),
            ) as call:
                latest = self._carry_out(call, req, amount, partial)
        except CallKeyTaken:
            pass  # a racing repeat recorded it first: its intent answers
        except ProviderError:
            lost = True  # refused (the intent says so) or lost (the intent stays open)
        finally:  # whatever failed after it, a cancel NICEPAY took after its repair still counts
            if call is not None and call.overtaken:
                keep_late_answer(self.engine, self.calls, call, req.payment_id, req.key)
        recorded = self.calls.by_key(payment.id, req.key)
        if recorded is None:  # the key's intent is never deleted
            raise RuntimeError(f"the intent of {req.key!r} of {payment.id!r} vanished")
        # A racing repeat, or a call that failed part-way, left no payment: read the stored one.
        return self._answer(req, recorded, latest or self.engine.get(payment.id), lost=lost)

    def _plan(self, payment: Instance, req: RefundRequest) -> tuple[str, bool]:
        """The amount to cancel and whether it is partial, once every check has passed."""
        if not payment.tx_id or not payment.amount:
            raise InvalidInstanceData(f"payment {payment.id!r} was never registered at NICEPAY")
        flow = self.engine.flow_of(payment)
        if not flow.candidates(payment.state, REQUEST_REFUND):
            raise self._not_refundable(req, payment.state)
        left = self._left(payment)
        amount = req.amount or str(max(left, 0))
        if int(amount) > left or left <= 0:
            raise _exceeds(req, amount, left)
        partial = int(amount) < int(payment.amount)
        refusal = cancel_refusal(
            payment.wallet or "",
            now=self.engine.clock.now(),
            paid_at=paid_at(flow, self.engine.history(payment.id)) or payment.created_at,
            partial=partial,
        )
        if refusal is not None:
            raise CancelNotAllowed(
                f"refund request {req.request_id!r} of {payment.id!r}: {refusal.detail}",
                payment_id=payment.id,
                request_id=req.request_id,
                rule=refusal.rule,
            )
        return amount, partial

    def _carry_out(
        self, call: OpenCall, req: RefundRequest, amount: str, partial: bool
    ) -> Instance:
        """Inside the recorded intent: check again, record the request, send, then inquire;
        the payment as it left it."""
        payment = self.engine.get(req.payment_id)
        others = [i for i in self.calls.of_instance(payment.id) if i.id != call.intent_id]
        before = committed(payment, others)
        if int(amount) > int(payment.amount or 0) - before:  # a request that finished meanwhile
            call.refuse(EXCEEDS_PAYMENT)
            return payment
        payload = {
            "amount": amount,
            "request_id": req.request_id,
            "reason": req.reason,
            "requested_by": req.requested_by,
            "refunded_before": str(before),
        }
        try:
            self.engine.fire_with_retry(
                payment.id,
                REQUEST_REFUND,
                actor=req.actor,
                idempotency_key=req.key,
                payload=payload,
            )
        except TransitionNotAllowed:  # recorded; the payment moved on (voided, say) meanwhile
            call.refuse(NOT_REFUNDABLE)
            return self.engine.get(payment.id)  # where it moved to is only in the store
        self.client.cancel(
            payment.tx_id or "",
            payment.reference_no or "",
            amount,
            partial=partial,
            reason=req.reason,
        )
        call.mark_answered()
        # Only the inquiry's void or refund moves the payment and binds its refunded total.
        return check_status(self.engine, self.calls, self.client, payment.id)

    def _answer(
        self, req: RefundRequest, intent: CallIntent, payment: Instance, *, lost: bool
    ) -> Refund:
        """The request's outcome from its intent (the first request's, for a repeat), and
        ``payment`` as read after it."""
        recorded = intent.amount or "0"
        if req.amount is not None and int(req.amount) != int(recorded):
            raise RefundRequestConflict(
                payment_id=req.payment_id,
                request_id=req.request_id,
                recorded=recorded,
                asked=req.amount,
            )
        if intent.outcome == f"refused:{EXCEEDS_PAYMENT}":
            raise _exceeds(req, recorded, self._left(payment))
        if intent.outcome == f"refused:{NOT_REFUNDABLE}":
            raise self._not_refundable(req, payment.state)
        status, code = _status(intent, lost=lost, overdue=self.calls.age(intent) >= INTENT_GRACE)
        return Refund(
            request_id=req.request_id,
            payment_id=payment.id,
            amount=recorded,
            status=status,
            provider_code=code,
            state=payment.state,
            refunded_amount=payment.refunded_amount or "0",
        )

    def _left(self, payment: Instance) -> int:
        """What is left to refund of the payment (negative if NICEPAY refunded too much)."""
        return int(payment.amount or 0) - committed(payment, self.calls.of_instance(payment.id))

    @staticmethod
    def _not_refundable(req: RefundRequest, state: str) -> CancelNotAllowed:
        return CancelNotAllowed(
            f"payment {req.payment_id!r} is {state}: no refund may be requested there",
            payment_id=req.payment_id,
            request_id=req.request_id,
            rule="state",
        )


def committed(payment: Instance, intents: Sequence[CallIntent]) -> int:
    """What no further refund may take again: the larger of the refunded total NICEPAY
    confirmed and the amounts of the cancels it accepted (open ones are not counted)."""
    accepted = sum(
        int(i.amount or 0) for i in intents if i.call == Call.CANCEL and i.outcome in _ACCEPTED
    )
    return max(int(payment.refunded_amount or 0), accepted)


def paid_at(flow: FlowDefinition, history: Sequence[TransitionRecord]) -> datetime | None:
    """When the payment settled: the time of its first step into a settled state."""
    settled = (r for r in history if flow.state(r.dest).kind.settled)
    return next((record.occurred_at for record in settled), None)


def _status(intent: CallIntent, *, lost: bool, overdue: bool) -> tuple[RefundStatus, str | None]:
    outcome = intent.outcome
    if outcome is None:
        return (RefundStatus.IN_DOUBT if lost or overdue else RefundStatus.PENDING), None
    if outcome in _ACCEPTED:
        return RefundStatus.SUCCEEDED, None
    kind, _, code = outcome.partition(":")
    if kind in ("refused", "failed"):
        return RefundStatus.DECLINED, code or None
    return RefundStatus.FAILED, None


def _exceeds(req: RefundRequest, amount: str, left: int) -> RefundExceedsPayment:
    return RefundExceedsPayment(
        payment_id=req.payment_id,
        request_id=req.request_id,
        amount=amount,
        refundable=str(max(left, 0)),
    )


def _checked_amount(amount: str | int | None) -> str | None:
    if amount is None:
        return None
    text = amount_string(amount)
    if int(text) == 0:
        raise ValueError("a refund must be for more than 0")
    return str(int(text))  # no leading zeros: one spelling per amount


def _printable_word(value: object, limit: int) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= limit
        and all("!" <= char <= "~" for char in value)
    )


def _printable_text(value: object, limit: int, *, empty: bool = True) -> bool:
    return (
        isinstance(value, str)
        and (empty or bool(value))
        and len(value) <= limit
        and value.isprintable()
    )


__all__ = [
    "Refund",
    "RefundRequest",
    "RefundStatus",
    "Refunds",
    "committed",
    "paid_at",
    "refund_request",
]
