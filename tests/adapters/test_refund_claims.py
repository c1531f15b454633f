"""A cancel and the reconciler on one payment, on SQLite and PostgreSQL, NICEPAY on loopback.

NICEPAY holds the cancel (or the reconciler's inquiry) at a gate while the other side runs, so
each race is played out in one order, with no timed sleep:

- a cancel under way holds its payment: a reconciler whose grace has passed repairs nothing, and
  the cancel finishes as answered;
- a reconciler acting on the payment refuses a cancel (``InstanceBusy``): nothing is stored or
  sent, and the same request goes through once it is done;
- a cancel that outlasts its claim, NICEPAY showing no refund yet, is waited for: the repair
  leaves its intent open until a grace after the claim ran out;
- a cancel whose process stalls past its claim before sending sends nothing;
- a cancel that outlasts that wait finds its intent repaired as ``repaired:not_refunded``: an
  accepted cancel is kept as ``answered:after_repair``, a lost answer opens the intent again for
  the next repair, and either way the late answer is logged as an error and recorded;
- a cancel that outlasts its claim and leaves its intent open while a repair is between its
  inquiry and closing the intent keeps the repair from closing it on that inquiry.

Every count of cancels is the simulator's, and what is left to refund is asked of the library.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from typing import Any

import pytest

from adapters.errors import CallInDoubt, InstanceBusy, RefundExceedsPayment
from adapters.nicepay.client import CANCEL_PATH, INQUIRY_PATH
from adapters.reconcile.intents import CALL_LEASE, INTENT_GRACE, Call
from adapters.reconcile.recovery import Reconciler, Repair
from adapters.reconcile.refund_repair import (
    ANSWERED_AFTER_REPAIR,
    AWAITING_CANCEL,
    LEFT_OPEN,
    REPAIRED_NOT_REFUNDED,
    REPAIRED_REFUNDED,
    repair_outcome,
)
from adapters.refunds import Refund, RefundStatus
from adapters.service import PaymentService
from fsm.errors import ConcurrentTransition, ConfigurationError, RejectReason
from fsm.model import Instance, RejectedEvent
from fsm.refunds import REQUEST_REFUND
from tests.adapters.counted_nicepay import GATE_LIMIT, Gate
from tests.adapters.refund_rig import UNUSED_URL, RefundRig, refund_rig
from tests.conftest import database

AMOUNT = "150000"
PAST_THE_CLAIM = CALL_LEASE + timedelta(minutes=1)
"""How long after the cancel began a reconciler runs, in the tests where the cancel outlasts
its claim, and NICEPAY may still be about to carry it out."""
PAST_THE_WAIT = CALL_LEASE + INTENT_GRACE + timedelta(minutes=1)
"""How long after the cancel began a reconciler runs, in the tests where the cancel outlasts
even the repair's wait for it: its claim, and a grace after."""


@contextmanager
def gated_rig(db_url: str, path: str) -> Iterator[tuple[RefundRig, Gate]]:
    gate = Gate(path)
    with refund_rig(db_url, gates=[gate]) as rig:
        yield rig, gate


@contextmanager
def in_background(work: Callable[[], Any], gate: Gate) -> Iterator[Future[Any]]:
    """``work`` on another thread, held at ``gate`` (closed now) until the block opens it."""
    gate.close()
    with ThreadPoolExecutor(1) as pool:
        try:
            done = pool.submit(work)
            gate.wait_for_call()
            yield done
        finally:
            gate.open()


def cancel_in_background(
    rig: RefundRig, payment: Instance, gate: Gate
) -> AbstractContextManager[Future[Any]]:
    """Refund request ``rf-1`` of 50000, held at ``gate`` on its way to NICEPAY."""
    return in_background(
        lambda: rig.service.cancel(payment.id, request_id="rf-1", amount="50000"), gate
    )


def told(refund: Refund) -> tuple[RefundStatus, str, str]:
    """What a request's answer says of it and of its payment."""
    return refund.status, refund.state, refund.refunded_amount


def cancel_outcomes(rig: RefundRig, payment: Instance) -> list[str | None]:
    calls = rig.service.calls.of_instance(payment.id)
    return [intent.outcome for intent in calls if intent.call == Call.CANCEL]


def late_answers(rig: RefundRig, payment: Instance) -> list[RejectedEvent]:
    refused = rig.engine.rejections(payment.id)
    return [r for r in refused if r.reason is RejectReason.LATE_ANSWER]


def assert_refunded_once(rig: RefundRig, payment: Instance, total: str = "50000") -> None:
    """NICEPAY served one cancel, and the payment's stored total is NICEPAY's."""
    stored = rig.engine.get(payment.id)
    assert rig.cancels_sent(payment) == 1
    assert rig.refunded_at_nicepay(payment) == total
    assert (stored.state, stored.refunded_amount) == ("refunded", total)


def assert_only_the_rest_is_refundable(rig: RefundRig, payment: Instance) -> None:
    """What the first cancel took is never offered again: the whole amount is refused, the rest
    is refunded, and NICEPAY's total ends at the paid amount."""
    with pytest.raises(RefundExceedsPayment) as over:
        rig.service.cancel(payment.id, request_id="rf-whole", amount=AMOUNT)
    assert over.value.refundable == "100000"
    rest = rig.service.cancel(payment.id, request_id="rf-rest")
    assert (rest.status, rest.amount, rest.refunded_amount) == (
        RefundStatus.SUCCEEDED,
        "100000",
        AMOUNT,
    )
    assert (rig.cancels_sent(payment), rig.refunded_at_nicepay(payment)) == (2, AMOUNT)


# --- the claim holds --------------------------------------------------------------------------


def test_a_reconciler_leaves_a_cancel_under_way_alone(db_url: str) -> None:
    with gated_rig(db_url, CANCEL_PATH) as (rig, gate):
        payment = rig.paid("under-way")
        with cancel_in_background(rig, payment, gate) as cancelling:
            # Past any reconciler's grace, yet within the cancel's claim.
            later = rig.clock.now() + timedelta(minutes=5)
            passed = Reconciler(rig.service, grace=timedelta(minutes=1)).run_once(now=later)
            assert (passed.repairs, passed.deadlines) == ([], [])
            assert cancel_outcomes(rig, payment) == [None]
        assert told(cancelling.result()) == (RefundStatus.SUCCEEDED, "refunded", "50000")
        assert cancel_outcomes(rig, payment) == ["answered"]
        assert late_answers(rig, payment) == []
        assert_refunded_once(rig, payment)
        assert_only_the_rest_is_refundable(rig, payment)


def test_a_reconciler_at_work_refuses_a_cancel_that_sends_nothing(db_url: str) -> None:
    with gated_rig(db_url, INQUIRY_PATH) as (rig, gate):
        payment = rig.paid("busy")
        # An inquiry a stopped process left open, which the reconciler repairs by asking again.
        rig.service.calls.record(payment.id, Call.INQUIRY, at=rig.clock.now(), tx_id=payment.tx_id)
        later = rig.clock.now() + INTENT_GRACE
        reconciler = Reconciler(rig.service)
        with in_background(lambda: reconciler.repair_open_intents(now=later), gate) as repairing:
            with pytest.raises(InstanceBusy) as busy:
                rig.service.cancel(payment.id, request_id="rf-1", amount="50000")
            assert busy.value.retryable
            assert rig.service.calls.by_key(payment.id, "refund:rf-1") is None
            assert REQUEST_REFUND not in [r.event for r in rig.engine.history(payment.id)]
            assert rig.cancels_sent(payment) == 0
        (repair,) = repairing.result()
        assert (repair.call, repair.outcome) == (Call.INQUIRY, "inquired")
        again = rig.service.cancel(payment.id, request_id="rf-1", amount="50000")
        assert (again.status, again.refunded_amount) == (RefundStatus.SUCCEEDED, "50000")
        assert_refunded_once(rig, payment)


@pytest.mark.parametrize("lease", [timedelta(0), timedelta(seconds=-1)])
def test_a_cancels_lease_must_be_positive(db_url: str, lease: timedelta) -> None:
    with refund_rig(db_url) as rig, pytest.raises(ConfigurationError):
        PaymentService(
            rig.engine,
            rig.service.client,
            store=database(rig.engine),
            notification_url=UNUSED_URL,
            callback_url=UNUSED_URL,
            cancel_lease=lease,
        )


# --- a cancel that outlasts its claim ---------------------------------------------------------


def test_a_repair_waits_for_a_cancel_that_may_still_reach_nicepay(db_url: str) -> None:
    with gated_rig(db_url, CANCEL_PATH) as (rig, gate):
        payment = rig.paid("waited-for")
        with cancel_in_background(rig, payment, gate) as cancelling:
            later = rig.clock.now() + PAST_THE_CLAIM
            (repair,) = Reconciler(rig.service).repair_open_intents(now=later)
            assert (repair.call, repair.after, repair.outcome) == (
                Call.CANCEL,
                "paid",
                AWAITING_CANCEL,
            )
            assert cancel_outcomes(rig, payment) == [None]
            # The payment's other refunds wait for it, refused with nothing stored or sent.
            with pytest.raises(CallInDoubt):
                rig.service.cancel(payment.id, request_id="rf-2", amount="10000")
            assert rig.service.calls.by_key(payment.id, "refund:rf-2") is None
        assert told(cancelling.result()) == (RefundStatus.SUCCEEDED, "refunded", "50000")
        assert cancel_outcomes(rig, payment) == ["answered"]
        assert late_answers(rig, payment) == []
        assert_refunded_once(rig, payment)
        assert_only_the_rest_is_refundable(rig, payment)


def test_a_cancel_that_stalls_past_its_claim_before_sending_sends_nothing(db_url: str) -> None:
    with refund_rig(db_url) as rig:
        payment = rig.paid("stalled")
        fire = rig.engine.fire_with_retry

        def stall_after_the_request_step(*args: Any, **kwargs: Any) -> Any:
            fired = fire(*args, **kwargs)
            if args[1] == REQUEST_REFUND:  # the process stops here for longer than its claim
                later = rig.clock.now() + PAST_THE_WAIT
                (repair,) = Reconciler(rig.service).repair_open_intents(now=later)
                assert repair.outcome == "inquired"
            return fired

        rig.engine.fire_with_retry = stall_after_the_request_step  # type: ignore[method-assign]
        refund = rig.service.cancel(payment.id, request_id="rf-1", amount="50000")
        rig.engine.fire_with_retry = fire  # type: ignore[method-assign]
        assert told(refund) == (RefundStatus.FAILED, "paid", "0")
        assert cancel_outcomes(rig, payment) == [REPAIRED_NOT_REFUNDED]
        assert (rig.cancels_sent(payment), late_answers(rig, payment)) == (0, [])
        again = rig.service.cancel(payment.id, request_id="rf-2", amount=AMOUNT)
        assert (again.status, again.refunded_amount) == (RefundStatus.SUCCEEDED, AMOUNT)


def test_a_cancel_accepted_after_its_repair_is_kept_and_reported(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with gated_rig(db_url, CANCEL_PATH) as (rig, gate):
        payment = rig.paid("late")
        with (
            caplog.at_level(logging.INFO, logger="adapters"),
            cancel_in_background(rig, payment, gate) as cancelling,
        ):
            later = rig.clock.now() + PAST_THE_WAIT
            (repair,) = Reconciler(rig.service).repair_open_intents(now=later)
            assert (repair.call, repair.after) == (Call.CANCEL, "paid")
            assert cancel_outcomes(rig, payment) == [REPAIRED_NOT_REFUNDED]
        assert told(cancelling.result()) == (RefundStatus.SUCCEEDED, "refunded", "50000")
        assert cancel_outcomes(rig, payment) == [ANSWERED_AFTER_REPAIR]
        intent = rig.service.calls.by_key(payment.id, "refund:rf-1")
        assert intent is not None
        (late,) = late_answers(rig, payment)
        assert (late.event, late.payload["answer"], late.payload["closed_as"]) == (
            Call.CANCEL,
            "answered",
            REPAIRED_NOT_REFUNDED,
        )
        assert late.payload["intent"] == intent.id
        assert_reported(caplog, rig, payment, intent.id)
        assert_refunded_once(rig, payment)
        assert_only_the_rest_is_refundable(rig, payment)


def test_a_cancel_accepted_after_its_repair_counts_though_its_inquiry_fails(
    db_url: str,
) -> None:
    with gated_rig(db_url, CANCEL_PATH) as (rig, gate):
        payment = rig.paid("late-unchecked")
        with cancel_in_background(rig, payment, gate) as cancelling:
            later = rig.clock.now() + PAST_THE_WAIT
            Reconciler(rig.service).repair_open_intents(now=later)
            rig.sim.faults.response(INQUIRY_PATH, status=503, times=None)  # after the repair
        refund = cancelling.result()
        rig.sim.faults.clear()
        # NICEPAY took 50000 that the payment does not show yet: the request still counts it.
        assert told(refund) == (RefundStatus.SUCCEEDED, "paid", "0")
        assert cancel_outcomes(rig, payment) == [ANSWERED_AFTER_REPAIR]
        assert [r.payload["answer"] for r in late_answers(rig, payment)] == ["answered"]
        assert rig.refunded_at_nicepay(payment) == "50000"
        with pytest.raises(RefundExceedsPayment) as over:
            rig.service.cancel(payment.id, request_id="rf-whole", amount=AMOUNT)
        assert over.value.refundable == "100000"
        assert rig.cancels_sent(payment) == 1


def test_a_cancel_accepted_after_its_repair_counts_though_its_inquiry_loses_a_race(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The follow-up status check fails with no provider error: here the race it can lose
    # against the repair that moved the payment meanwhile.
    def lost_race(_engine: object, _calls: object, _client: object, payment_id: str) -> None:
        raise ConcurrentTransition(payment_id, None, "check_status", None)

    with gated_rig(db_url, CANCEL_PATH) as (rig, gate):
        payment = rig.paid("late-raced")
        with cancel_in_background(rig, payment, gate) as cancelling:
            later = rig.clock.now() + PAST_THE_WAIT
            Reconciler(rig.service).repair_open_intents(now=later)
            monkeypatch.setattr("adapters.refunds.cancel.check_status", lost_race)
        with pytest.raises(ConcurrentTransition):
            cancelling.result()
        monkeypatch.undo()
        assert cancel_outcomes(rig, payment) == [ANSWERED_AFTER_REPAIR]
        assert [r.payload["answer"] for r in late_answers(rig, payment)] == ["answered"]
        assert rig.refunded_at_nicepay(payment) == "50000"
        with pytest.raises(RefundExceedsPayment):
            rig.service.cancel(payment.id, request_id="rf-whole", amount=AMOUNT)
        assert rig.cancels_sent(payment) == 1


def test_a_cancel_whose_answer_is_lost_after_its_repair_is_repaired_again(db_url: str) -> None:
    with gated_rig(db_url, CANCEL_PATH) as (rig, gate):
        payment = rig.paid("late-lost")
        with cancel_in_background(rig, payment, gate) as cancelling:
            later = rig.clock.now() + PAST_THE_WAIT
            Reconciler(rig.service).repair_open_intents(now=later)
            rig.sim.faults.response(CANCEL_PATH, status=503, process=True)  # refunded, then lost
        assert told(cancelling.result()) == (RefundStatus.IN_DOUBT, "paid", "0")
        assert cancel_outcomes(rig, payment) == [None]  # open again: a repair must ask again
        assert [r.payload["answer"] for r in late_answers(rig, payment)] == ["lost"]
        with pytest.raises(CallInDoubt):
            rig.service.cancel(payment.id, request_id="rf-whole", amount=AMOUNT)
        (repair,) = Reconciler(rig.service).repair_open_intents(now=later)
        assert (repair.before, repair.after) == ("paid", "refunded")
        assert cancel_outcomes(rig, payment) == [REPAIRED_REFUNDED]
        settled = rig.service.cancel(payment.id, request_id="rf-1")
        assert (settled.status, settled.refunded_amount) == (RefundStatus.SUCCEEDED, "50000")
        assert_refunded_once(rig, payment)
        assert_only_the_rest_is_refundable(rig, payment)


class PausedRepair:
    """A reconciler pass on another thread, held after its inquiry, before it closes an intent;
    any later repair, on any replica, runs through."""

    def __init__(
        self, rig: RefundRig, monkeypatch: pytest.MonkeyPatch, after: timedelta = PAST_THE_WAIT
    ) -> None:
        self._asked = threading.Event()
        self._resume = threading.Event()

        def asked_then_wait(engine: Any, calls: Any, intent: Any, *, refunded: int) -> str:
            found = repair_outcome(engine, calls, intent, refunded=refunded)
            if not self._asked.is_set():
                self._asked.set()
                assert self._resume.wait(GATE_LIMIT), "the paused repair was never resumed"
            return found

        monkeypatch.setattr("adapters.reconcile.cancel_repair.repair_outcome", asked_then_wait)
        later = rig.clock.now() + after
        self._pool = ThreadPoolExecutor(1)
        self._done = self._pool.submit(Reconciler(rig.service).repair_open_intents, now=later)
        assert self._asked.wait(GATE_LIMIT), "the repair never asked NICEPAY"

    def finish(self) -> list[Repair]:
        self._resume.set()
        try:
            return self._done.result(GATE_LIMIT)
        finally:
            self._pool.shutdown()


@pytest.mark.parametrize(
    ("failing", "answer"),
    [(CANCEL_PATH, "lost"), (INQUIRY_PATH, "accepted, its status check failed")],
)
def test_a_repair_that_asked_before_the_cancel_leaves_its_intent_open(
    db_url: str, monkeypatch: pytest.MonkeyPatch, failing: str, answer: str
) -> None:
    with gated_rig(db_url, CANCEL_PATH) as (rig, gate):
        payment = rig.paid("late-open")
        with cancel_in_background(rig, payment, gate) as cancelling:
            # The repair claims the payment once the cancel's claim ran out, and asks NICEPAY
            # while the cancel is still held: nothing is refunded yet.
            repairing = PausedRepair(rig, monkeypatch)
            rig.sim.faults.response(failing, status=503, process=True, times=None)
        assert told(cancelling.result()) == (RefundStatus.IN_DOUBT, "paid", "0"), answer
        rig.sim.faults.clear()
        assert rig.refunded_at_nicepay(payment) == "50000"
        (repair,) = repairing.finish()
        monkeypatch.undo()
        assert (repair.call, repair.outcome) == (Call.CANCEL, LEFT_OPEN)
        assert cancel_outcomes(rig, payment) == [None]  # never "not refunded"
        with pytest.raises(CallInDoubt):
            rig.service.cancel(payment.id, request_id="rf-again", amount="50000")
        (again,) = Reconciler(rig.service).repair_open_intents(now=rig.clock.now() + PAST_THE_WAIT)
        assert (again.before, again.after) == ("paid", "refunded")
        assert cancel_outcomes(rig, payment) == [REPAIRED_REFUNDED]
        assert late_answers(rig, payment) == []
        assert_refunded_once(rig, payment)
        assert_only_the_rest_is_refundable(rig, payment)


def assert_reported(
    caplog: pytest.LogCaptureFixture, rig: RefundRig, payment: Instance, intent_id: int
) -> None:
    """One error names the payment and the intent, and no secret reaches the log."""
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(r.getMessage(), r.__dict__["instance"], r.__dict__["intent"]) for r in errors] == [
        ("cancel answered after a repair closed its intent", payment.id, intent_id)
    ]
    logged = "\n".join(str(record.__dict__) for record in caplog.records)
    assert rig.nicepay.config.merchant_key.get_secret_value() not in logged
    assert "merchantToken" not in logged
