"""Status checks: ask NICEPAY, then fire the one event its answer maps to.

This is the only automatic path to a settlement. A payment not yet settled first moves to its
status-check state (so the log shows who asked and why), then the inquiry's ``status`` becomes the
event its wallet adapter names (:meth:`~adapters.wallets.base.FlowAdapter.inquiry_event`, from
the inquiry table of :mod:`~adapters.wallets.status_codes`). Repeated answers are absorbed by
idempotency keys built from ``(tXid, event)``, as the reference recommends; an answer that would
move a settled payment backwards is refused by the flow and recorded as stale; an unknown code is
recorded (and so counted), logged as a warning and changes nothing, and the state's deadline,
backing off, schedules the next check.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Protocol

from adapters.errors import ProviderError
from adapters.reconcile.hints import hints_to_ask
from adapters.reconcile.intents import Call, recorded_call
from adapters.reconcile.journal import CallJournal
from adapters.wallets.registry import adapter_of
from adapters.wallets.status_codes import PENDING_EVENTS
from fsm.definition import Actor
from fsm.engine import Engine
from fsm.errors import RejectReason, TransitionNotAllowed
from fsm.flows import PaymentEvent
from fsm.model import Instance
from fsm.store.leases import Leases

logger = logging.getLogger(__name__)

CHECK_STATUS = "check_status"
REPORT_STATUS = "report_status"
"""The name unknown inquiry codes are recorded under; no flow declares it, so it never applies."""
_AMOUNT = re.compile(r"[0-9]{1,18}")


class InquiryAnswer(Protocol):
    """The parts of an inquiry response a status check reads."""

    @property
    def status(self) -> str | None:
        """The inquiry ``status`` code."""
        ...

    @property
    def cancel_amount(self) -> str | None:
        """``cancelAmt``: cancelled or refunded so far."""
        ...

    @property
    def tx_id(self) -> str:
        """The ``tXid`` the answer is about."""
        ...

    @property
    def reference_no(self) -> str | None:
        """The ``referenceNo`` the answer is about."""
        ...

    @property
    def amount(self) -> str | None:
        """The ``amt`` the answer is about."""
        ...

    @property
    def result_msg(self) -> str | None:
        """``resultMsg``: the status as text; shown, never branched on."""
        ...


@dataclass(frozen=True)
class HeardAnswer:
    """One inquiry answer as a status check heard it: whether it was about the payment, what
    it meant, and the refunded total (``cancelAmt``) it stated."""

    verified: bool
    """The answer's tXid, referenceNo and amount agree with the payment's."""
    cancel_amount: str | None
    """``cancelAmt`` as NICEPAY sent it (absent, or anything at all)."""
    event: str | None = None
    """The event its status maps to for the payment (``None``: a status the table lacks)."""
    amount: str | None = None
    """The payment's amount."""

    @property
    def exact_total(self) -> int | None:
        """NICEPAY's cumulative refunded total, as far as the answer tells it exactly; else
        ``None``: such an answer is no evidence of what was refunded.

        A verified void returned the whole amount, whatever ``cancelAmt`` says (§10 promises it
        only with a refund). Otherwise the answer's own ``cancelAmt``, when exact and within the
        payment's amount. An unknown status tells nothing.
        """
        if not self.verified or self.event is None:
            return None
        if self.event == PaymentEvent.VOID_PAYMENT and _AMOUNT.fullmatch(self.amount or ""):
            return int(self.amount or 0)
        stated = self.cancel_amount or ""
        if _AMOUNT.fullmatch(stated) and int(stated) <= int(self.amount or 0):
            return int(stated)
        return None


class Inquirer(Protocol):
    """Anything that can ask NICEPAY for a transaction's status."""

    def inquiry(self, tx_id: str, reference_no: str, amount: str) -> InquiryAnswer:
        """One status inquiry."""
        ...


class StatusChecks(Protocol):
    """What the reconciler and the inbound handler need of the payment service.

    :class:`~adapters.service.PaymentService` is one; the layers below it name this instead.
    """

    @property
    def engine(self) -> Engine:
        """The engine the payments are stored in."""
        ...

    @property
    def calls(self) -> CallJournal:
        """The journal of the NICEPAY calls made for the payments."""
        ...

    @property
    def leases(self) -> Leases:
        """The reconcilers' claims on the payments."""
        ...

    def check_status(
        self,
        payment_id: str,
        *,
        actor: Actor = Actor.MERCHANT,
        tx_id_hint: str | None = None,
        call_key: str | None = None,
        heard: list[HeardAnswer] | None = None,
    ) -> Instance:
        """Ask NICEPAY for the payment's status and apply the answer (:func:`check_status`)."""
        ...


def request_check(engine: Engine, payment: Instance, actor: Actor) -> Instance:
    """Move an unsettled payment to its status-check state, if the flow allows it from here."""
    flow = engine.flow_of(payment)
    checks = flow.candidates(payment.state, CHECK_STATUS)
    if flow.state(payment.state).kind.settled or not checks:
        return payment
    if checks[0].dest == payment.state and actor != Actor.TIMER:
        return payment  # already waiting for this answer; only the timer records a retry
    key = f"check:{payment.version}"  # one check per version: a retry of the same check is absorbed
    try:
        return engine.fire_with_retry(
            payment.id, CHECK_STATUS, actor=actor, idempotency_key=key
        ).instance
    except TransitionNotAllowed:  # recorded; the state moved on meanwhile
        return engine.get(payment.id)


def apply_answer(
    engine: Engine,
    payment: Instance,
    answer: InquiryAnswer,
    *,
    asked_tx_id: str | None = None,
    heard: list[HeardAnswer] | None = None,
) -> Instance:
    """Fire the event ``answer`` maps to for ``payment``'s wallet (or record why not).

    ``asked_tx_id`` is the tXid the inquiry was made with, when the payment has none stored yet
    (an AstraPay payment whose notification is missing); an answer that agrees with the stored
    referenceNo and amount then binds it. ``heard``, when given, gets the answer as heard, so
    that a caller deciding from this very answer need not read it back from the payment.
    """
    tx_id, status = payment.tx_id or asked_tx_id or "", answer.status or ""
    payload = {
        "tXid": tx_id,
        "tx_id": tx_id,
        "status": status,
        "cancelAmt": answer.cancel_amount,
        "resultMsg": answer.result_msg,
    }
    mismatch = _mismatch(payment, answer, tx_id)
    event = None if mismatch else adapter_of(payment).inquiry_event(status, payment.state)
    if heard is not None:
        said = HeardAnswer(not mismatch, answer.cancel_amount, event, payment.amount)
        heard.append(said)
    if mismatch:
        engine.record_refused(
            payment.id,
            REPORT_STATUS,
            actor=Actor.STATUS_INQUIRY,
            idempotency_key=f"inquiry:{answer.tx_id}:mismatch:v{payment.version}",
            reason=RejectReason.UNVERIFIED,
            detail=mismatch,
            payload=payload,
        )
        return payment
    if event is None:
        logger.warning(
            "unknown inquiry status",
            extra={"instance": payment.id, "wallet": payment.wallet, "status": status[:16]},
        )
        engine.record_refused(
            payment.id,
            REPORT_STATUS,
            actor=Actor.STATUS_INQUIRY,
            idempotency_key=f"inquiry:{tx_id}:{_code_key(status)}:v{payment.version}",
            reason=RejectReason.UNKNOWN_STATUS,
            detail=f"inquiry status {status[:16]!r} is not in the inquiry table",
            payload=payload,
        )
        return payment
    refunded = refunded_total(payment, event, answer.cancel_amount)
    if refunded is not None:
        payload["refunded_amount"] = refunded
    if event in PENDING_EVENTS:
        key = f"inquiry:{tx_id}:{event}:v{payment.version}"
    else:
        key = f"inquiry:{tx_id}:{event}:{answer.cancel_amount or ''}"
    try:
        return engine.fire_with_retry(
            payment.id, event, actor=Actor.STATUS_INQUIRY, idempotency_key=key, payload=payload
        ).instance
    except TransitionNotAllowed as refused:
        logger.info(
            "inquiry answer not applied",
            extra={"instance": payment.id, "event": event, "reason": str(refused.reason)},
        )
    return engine.get(payment.id)


def refunded_total(payment: Instance, event: str, cancel_amount: str | None) -> str | None:
    """The refunded total a void or refund binds; ``None`` for any other event.

    A void returns the whole amount. A refund binds NICEPAY's cumulative ``cancelAmt``, never
    less than the total already stored (a late answer must not lower it). Without an exact
    ``cancelAmt`` it keeps the stored total, or takes the whole amount when none is stored: an
    overstated total can only leave refund room unused, never refund the same money twice.
    """
    if event == PaymentEvent.VOID_PAYMENT:
        return payment.amount
    if event != PaymentEvent.REFUND_PAYMENT:
        return None
    if not _AMOUNT.fullmatch(cancel_amount or ""):
        return payment.refunded_amount or payment.amount
    return str(max(int(cancel_amount or 0), int(payment.refunded_amount or 0)))


def _code_key(status: str) -> str:
    """``status`` as a part of a key: a long one (anything may come back) by its digest."""
    if len(status) <= 16:
        return status
    return "sha256:" + hashlib.sha256(status.encode()).hexdigest()[:16]


def _mismatch(payment: Instance, answer: InquiryAnswer, tx_id: str) -> str | None:
    """Why the answer is not about this payment, if it is not."""
    pairs = (
        ("tXid", answer.tx_id, tx_id),
        ("referenceNo", answer.reference_no, payment.reference_no),
        ("amt", answer.amount, payment.amount),
    )
    for name, said, stored in pairs:
        if said is not None and said != stored:  # absent echoes are tolerated (§9 lists them)
            return f"inquiry answer has {name} {said!r}, the payment {stored!r}"
    return None


def check_status(
    engine: Engine,
    calls: CallJournal,
    inquirer: Inquirer,
    payment_id: str,
    *,
    actor: Actor = Actor.MERCHANT,
    tx_id_hint: str | None = None,
    call_key: str | None = None,
    heard: list[HeardAnswer] | None = None,
) -> Instance:
    """Run one status check for the payment and apply its answer.

    A payment without a ``tXid`` is asked about with the tXids its browser returns named
    (:mod:`~adapters.reconcile.hints`): ``tx_id_hint`` alone when given (the return being
    handled), else
    the few recorded ones NICEPAY has not disproved, until one is confirmed. NICEPAY's answer is
    applied, and the tXid bound, only when it agrees with the stored referenceNo and amount. With
    nothing to ask, the payment is returned unchanged; only the timer's check is still recorded,
    so that the state's deadline schedules the next one. Each inquiry is recorded in ``calls``,
    and ``call_key`` names the (first) one (see :func:`~adapters.reconcile.intents.recorded_call`).
    Each answer heard is appended to ``heard``, when given (:func:`apply_answer`).

    Raises:
        ProviderError: the inquiry failed (for hints: none was confirmed and one could not be
            asked); the payment stays in its status-check state, whose deadline schedules the
            next attempt. A hint NICEPAY refuses is only recorded.
        CallKeyTaken: an inquiry under ``call_key`` was already recorded; none was sent.
    """
    payment = engine.get(payment_id)
    if payment.tx_id:
        asked = [payment.tx_id]
    else:
        asked = hints_to_ask(engine, calls, payment.id, given=tx_id_hint)
    if not (asked and payment.reference_no and payment.amount):
        return request_check(engine, payment, actor) if actor == Actor.TIMER else payment
    payment = request_check(engine, payment, actor)
    if payment.tx_id:  # also when a notification bound it meanwhile
        return _inquire(engine, calls, inquirer, payment, payment.tx_id, call_key, heard)
    return _ask_hints(engine, calls, inquirer, payment, asked, call_key, heard)


def _inquire(
    engine: Engine,
    calls: CallJournal,
    inquirer: Inquirer,
    payment: Instance,
    tx_id: str,
    call_key: str | None,
    heard: list[HeardAnswer] | None = None,
) -> Instance:
    asked = {"tXid": tx_id, "referenceNo": payment.reference_no, "amt": payment.amount}
    with recorded_call(calls, payment, Call.INQUIRY, request=asked, tx_id=tx_id, call_key=call_key):
        answer = inquirer.inquiry(tx_id, payment.reference_no or "", payment.amount or "")
        payment = engine.get(payment.id)
        return apply_answer(engine, payment, answer, asked_tx_id=tx_id, heard=heard)


def _ask_hints(
    engine: Engine,
    calls: CallJournal,
    inquirer: Inquirer,
    payment: Instance,
    hints: list[str],
    call_key: str | None,
    heard: list[HeardAnswer] | None,
) -> Instance:
    """Ask about each hint until NICEPAY confirms one (and the answer binds it).

    ``call_key`` names the first inquiry only: a key is recorded once per payment.
    """
    failed: ProviderError | None = None
    for number, tx_id in enumerate(hints):
        try:
            key = call_key if number == 0 else None
            payment = _inquire(engine, calls, inquirer, payment, tx_id, key, heard)
        except ProviderError as error:  # the call intent keeps the outcome
            logger.info(
                "tXid hint not confirmed",
                extra={"instance": payment.id, "reason": type(error).__name__},
            )
            failed = error if error.retryable else failed
            continue
        if payment.tx_id:
            return payment
    if failed is not None:
        raise failed
    return payment
