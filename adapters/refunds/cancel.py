"""Carrying out a refund request: its intent, its step, the cancel, and the status check after."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from adapters.errors import (
    CallKeyTaken,
    CancelNotAllowed,
    ProviderError,
    RefundExceedsPayment,
    RefundRequestConflict,
    RefundTotalsDisagree,
)
from adapters.nicepay.client import NicepayClient
from adapters.reconcile.intents import (
    CALL_LEASE,
    Call,
    OpenCall,
    checked_lease,
    recorded_call,
)
from adapters.reconcile.journal import CallIntent, CallJournal, Hold
from adapters.reconcile.refund_repair import keep_late_answer
from adapters.reconcile.status import check_status
from adapters.refunds.outcome import Refund, refund_status
from adapters.refunds.request import RefundRequest
from adapters.refunds.total_check import (
    INQUIRY_FAILED,
    TOTALS_DISAGREE,
    UnverifiedAnswer,
    accounted_for,
    check_total,
)
from adapters.wallets.cancel_rules import cancel_refusal
from fsm.definition import FlowVersions
from fsm.engine import Engine
from fsm.errors import FsmError, InvalidInstanceData, TransitionNotAllowed
from fsm.model import Instance, TransitionRecord
from fsm.refunds import REQUEST_REFUND
from fsm.store.leases import claim_owner

EXCEEDS_PAYMENT: Final = "exceeds_payment"
NOT_REFUNDABLE: Final = "not_refundable"
HOLD_LOST: Final = "hold_lost"
"""Why a cancel closed ``unsent``: its claim ran out before it was sent."""


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
        each cancel holds its payment against the reconcilers for at most ``lease``, and one
        with no answer stored after that is reported in doubt.

        Raises:
            ConfigurationError: ``lease`` is not positive.
        """
        self.engine = engine
        self.calls = calls
        self.client = client
        self.lease = checked_lease(lease)

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
            RefundTotalsDisagree: NICEPAY had refunded more than the payment's recorded cancels
                accounted for, one closed as not refunded having taken effect after all;
                nothing was sent (:mod:`adapters.refunds.total_check`).
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
                hold=Hold(claim_owner("cancel"), self.lease),
            ) as call:
                latest = self._carry_out(call, req, amount, partial)
        except CallKeyTaken:
            pass  # a racing repeat recorded it first: its intent answers
        except ProviderError:
            lost = True  # refused (the intent says so) or lost (the intent stays open)
        finally:  # whatever failed after it, a cancel NICEPAY took after its repair still counts
            if call is not None and call.overtaken and call.sent:
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
        lineage = self.engine.catalog.lineage(payment.flow)
        refusal = cancel_refusal(
            payment.wallet or "",
            now=self.engine.clock.now(),
            paid_at=paid_at(lineage, self.engine.history(payment.id)) or payment.created_at,
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
        """Inside the recorded intent: ask NICEPAY's total, check again, record the request,
        send, then inquire; the payment as it left it."""
        try:
            disagreement = check_total(
                self.engine, self.calls, self.client, req.payment_id, intent_id=call.intent_id
            )
        except (FsmError, UnverifiedAnswer):  # NICEPAY's, or a store's: nothing is sent
            call.give_up(INQUIRY_FAILED)
            return self.engine.get(req.payment_id)
        if disagreement is not None and disagreement.put_in_doubt:
            call.refuse(TOTALS_DISAGREE)
            return self.engine.get(req.payment_id)
        payment = self.engine.get(req.payment_id)
        others = [i for i in self.calls.of_instance(payment.id) if i.id != call.intent_id]
        before = committed(payment, others)
        if disagreement is not None:  # refunded outside the library: it counts all the same
            before = max(before, disagreement.nicepay_total)
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
        if not call.keep_hold():  # this process stalled past its claim: a repair may act
            call.give_up(HOLD_LOST)
            return self.engine.get(payment.id)
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
        if intent.outcome == f"refused:{TOTALS_DISAGREE}":
            raise self._disagree(req, payment)
        given_up = lost or intent.left_open_at is not None
        overdue = self.calls.age(intent) >= self.lease
        status, code = refund_status(intent, in_doubt=given_up or overdue)
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

    def _disagree(self, req: RefundRequest, payment: Instance) -> RefundTotalsDisagree:
        accounted = accounted_for(self.calls.of_instance(payment.id))
        total = int(payment.refunded_amount or 0)
        return RefundTotalsDisagree(
            f"refund request {req.request_id!r} of {payment.id!r} was not sent: NICEPAY had "
            "refunded more than the payment's recorded cancels accounted for, and those closed "
            f"as not refunded went back in doubt (now NICEPAY's total is {total}, and the "
            f"recorded cancels take or may take {accounted}); the reconciler or a person "
            "settles them (settle-refund), then ask under a new request id",
            payment_id=payment.id,
            request_id=req.request_id,
            nicepay_total=total,
            accounted=accounted,
        )

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
    confirmed and the amounts of the cancels it took or may have taken (open ones are not
    counted)."""
    return max(int(payment.refunded_amount or 0), accounted_for(intents))


def paid_at(flow: FlowVersions, history: Sequence[TransitionRecord]) -> datetime | None:
    """When the payment settled: the time of its first step into a settled state, each step's
    state read in the flow version it ran under (a later one may have renamed or dropped it)."""

    def settles(record: TransitionRecord) -> bool:
        version = flow.versions.get(record.flow_version, flow.latest)
        return record.dest in version.state_map and version.state(record.dest).kind.settled

    return next((record.occurred_at for record in history if settles(record)), None)


def _exceeds(req: RefundRequest, amount: str, left: int) -> RefundExceedsPayment:
    return RefundExceedsPayment(
        payment_id=req.payment_id,
        request_id=req.request_id,
        amount=amount,
        refundable=str(max(left, 0)),
    )


__all__ = ["Refunds", "committed", "paid_at"]
