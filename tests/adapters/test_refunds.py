"""Refund requests against the loopback simulator, on SQLite and PostgreSQL.

A request is carried out once per ``request_id``: repeats answer from its intent and send
nothing; partial refunds add up to the paid amount and no further; the request is a step in the
payment's log; NICEPAY's refusal declines it and frees its amount; a lost answer leaves it in
doubt until the reconciler's inquiry settles it. Every count of cancels is the simulator's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

from adapters.errors import (
    CallInDoubt,
    CancelNotAllowed,
    InvalidRefundRequest,
    RefundExceedsPayment,
    RefundRequestConflict,
)
from adapters.nicepay.client import CANCEL_PATH
from adapters.reconcile.intents import INTENT_GRACE, Call
from adapters.reconcile.journal import CallJournal
from adapters.reconcile.recovery import Reconciler
from adapters.refunds import Refund, RefundStatus
from adapters.simulator import CancelRule
from adapters.simulator.rig import demo_order
from fsm.errors import InstanceNotFound
from fsm.flows import Wallet
from fsm.model import Instance
from fsm.refunds import REQUEST_REFUND, refund_requests
from tests.adapters.refund_rig import RefundRig, refund_rig
from tests.conftest import database

AMOUNT = "150000"


@pytest.fixture
def rig(db_url: str) -> Iterator[RefundRig]:
    with refund_rig(db_url) as opened:
        yield opened


def cancel_intents(rig: RefundRig, payment: Instance) -> list[tuple[str | None, str | None]]:
    """The payment's cancels as ``(key, outcome)``."""
    return [
        (i.call_key, i.outcome)
        for i in rig.service.calls.of_instance(payment.id)
        if i.call == Call.CANCEL
    ]


def requested(rig: RefundRig, payment: Instance) -> list[tuple[str, str]]:
    """``(request id, amount)`` of every refund request in the payment's log."""
    return [(r.request_id, r.amount) for r in refund_requests(rig.engine.history(payment.id))]


def nothing_stored(rig: RefundRig, payment: Instance, before: Instance) -> None:
    assert rig.engine.get(payment.id) == before
    assert REQUEST_REFUND not in [r.event for r in rig.engine.history(payment.id)][before.version :]


# --- one request, once -------------------------------------------------------------------------


def test_a_retried_partial_refund_is_refunded_once(rig: RefundRig) -> None:
    payment = rig.paid("retried")
    first = rig.service.cancel(
        payment.id, request_id="rf-1", amount="50000", reason="one shirt", requested_by="siti"
    )
    assert first == Refund(
        "rf-1", payment.id, "50000", RefundStatus.SUCCEEDED, None, "refunded", "50000"
    )
    again = rig.service.cancel(payment.id, request_id="rf-1", amount="50000")
    omitted = rig.service.cancel(payment.id, request_id="rf-1")  # a retry may leave it out
    assert again == omitted == first
    assert rig.cancels_sent(payment) == 1
    assert rig.refunded_at_nicepay(payment) == "50000"
    assert cancel_intents(rig, payment) == [("refund:rf-1", "answered")]
    (step,) = refund_requests(rig.engine.history(payment.id))
    assert (step.request_id, step.amount, step.reason, step.requested_by) == (
        "rf-1",
        "50000",
        "one shirt",
        "siti",
    )
    assert str(step.actor) == "merchant"


def test_the_same_request_with_another_amount_is_a_conflict(rig: RefundRig) -> None:
    payment = rig.paid("conflict")
    rig.service.cancel(payment.id, request_id="rf-1", amount="50000")
    before = rig.engine.get(payment.id)
    with pytest.raises(RefundRequestConflict) as conflict:
        rig.service.cancel(payment.id, request_id="rf-1", amount="60000")
    assert (conflict.value.recorded, conflict.value.asked) == ("50000", "60000")
    nothing_stored(rig, payment, before)
    assert rig.cancels_sent(payment) == 1


def test_a_full_cancel_voids_and_binds_the_whole_amount(rig: RefundRig) -> None:
    payment = rig.paid("void", Wallet.OVO)
    refund = rig.service.cancel(payment.id, request_id="void-1", reason="out of stock")
    assert (refund.status, refund.amount, refund.state, refund.refunded_amount) == (
        RefundStatus.SUCCEEDED,
        AMOUNT,
        "voided",
        AMOUNT,
    )
    with pytest.raises(CancelNotAllowed) as refused:  # a voided payment takes no request
        rig.service.cancel(payment.id, request_id="void-2")
    assert refused.value.rule == "state"
    assert rig.cancels_sent(payment) == 1


# --- partial refunds add up, and stop at the paid amount ---------------------------------------


def test_partial_refunds_add_up_to_the_paid_amount_and_no_further(rig: RefundRig) -> None:
    payment = rig.paid("partials")
    assert rig.service.cancel(payment.id, request_id="a", amount="50000").refunded_amount == "50000"
    second = rig.service.cancel(payment.id, request_id="b", amount="30000")
    assert (second.state, second.refunded_amount) == ("refunded", "80000")
    before = rig.engine.get(payment.id)
    with pytest.raises(RefundExceedsPayment) as over:
        rig.service.cancel(payment.id, request_id="c", amount="100000")
    assert (over.value.amount, over.value.refundable) == ("100000", "70000")
    nothing_stored(rig, payment, before)
    assert rig.service.calls.by_key(payment.id, "refund:c") is None
    assert rig.cancels_sent(payment) == 2
    rest = rig.service.cancel(payment.id, request_id="d")  # no amount: whatever is left
    assert (rest.amount, rest.refunded_amount) == ("70000", AMOUNT)
    with pytest.raises(RefundExceedsPayment) as nothing_left:
        rig.service.cancel(payment.id, request_id="e")
    assert nothing_left.value.refundable == "0"
    assert requested(rig, payment) == [("a", "50000"), ("b", "30000"), ("d", "70000")]
    assert (rig.cancels_sent(payment), rig.refunded_at_nicepay(payment)) == (3, AMOUNT)


# --- NICEPAY's refusal, and a lost answer ------------------------------------------------------


@contextmanager
def shopeepay_without_partial_cancels(db_url: str) -> Iterator[RefundRig]:
    rule = CancelRule(void_within=timedelta(days=90))  # partial cancels: 9314
    with refund_rig(db_url, cancel_rules={Wallet.SHOPEEPAY: rule}) as opened:
        yield opened


def test_nicepays_refusal_declines_the_request_and_frees_its_amount(db_url: str) -> None:
    with shopeepay_without_partial_cancels(db_url) as rig:
        payment = rig.paid("declined")
        declined = rig.service.cancel(payment.id, request_id="rf-1", amount="50000")
        assert (declined.status, declined.provider_code) == (RefundStatus.DECLINED, "9314")
        assert (declined.state, declined.refunded_amount) == ("paid", "0")
        assert rig.service.cancel(payment.id, request_id="rf-1") == declined  # asked again
        assert cancel_intents(rig, payment) == [("refund:rf-1", "refused:9314")]
        whole = rig.service.cancel(payment.id, request_id="rf-2")  # its 50000 is free again
        assert (whole.amount, whole.state, whole.refunded_amount) == (AMOUNT, "voided", AMOUNT)
        assert rig.cancels_sent(payment) == 2


def test_a_lost_answer_stays_in_doubt_until_the_reconcilers_inquiry(rig: RefundRig) -> None:
    payment = rig.paid("lost")
    rig.sim.faults.response(CANCEL_PATH, status=503, process=True)  # refunded, answer lost
    lost = rig.service.cancel(payment.id, request_id="rf-1", amount="50000")
    assert (lost.status, lost.state, lost.refunded_amount) == (RefundStatus.IN_DOUBT, "paid", "0")
    # Asked again, the request says its answer was lost, not that its call may be under way.
    assert rig.service.cancel(payment.id, request_id="rf-1").status is RefundStatus.IN_DOUBT
    with pytest.raises(CallInDoubt):  # another request waits for the first one's answer
        rig.service.cancel(payment.id, request_id="rf-2", amount="10000")
    rig.clock.advance(INTENT_GRACE)
    assert rig.service.cancel(payment.id, request_id="rf-1").status is RefundStatus.IN_DOUBT
    (repair,) = Reconciler(rig.service).repair_open_intents()
    assert (repair.call, repair.before, repair.after) == (Call.CANCEL, "paid", "refunded")
    assert cancel_intents(rig, payment) == [("refund:rf-1", "repaired:refunded")]
    settled = rig.service.cancel(payment.id, request_id="rf-1")
    assert (settled.status, settled.state, settled.refunded_amount) == (
        RefundStatus.SUCCEEDED,
        "refunded",
        "50000",
    )
    assert rig.cancels_sent(payment) == 1
    more = rig.service.cancel(payment.id, request_id="rf-2", amount="10000")
    assert (more.status, more.refunded_amount) == (RefundStatus.SUCCEEDED, "60000")


# --- two different requests that no longer both fit --------------------------------------------


class InterleavingJournal(CallJournal):
    """A call journal that, before the first cancel intent it records, lets ``first`` run:
    another replica's request, carried out between this request's check and its intent."""

    first: Any = None

    def record(self, instance_id: str, call: str, **fields: Any) -> int:
        run, self.first = self.first, None
        if run is not None and call == Call.CANCEL:
            run()
        return super().record(instance_id, call, **fields)


def test_a_request_that_no_longer_fits_once_recorded_is_refused_unsent(db_url: str) -> None:
    with refund_rig(db_url) as rig:
        journal = InterleavingJournal(database(rig.engine), clock=rig.engine.clock)
        rig.service.calls = journal
        payment = rig.paid("raced")
        other: dict[str, Refund] = {}

        def other_replica() -> None:
            other["b"] = rig.service.cancel(payment.id, request_id="b", amount="100000")

        journal.first = other_replica
        with pytest.raises(RefundExceedsPayment) as late:
            rig.service.cancel(payment.id, request_id="a", amount="100000")
        assert late.value.refundable == "50000"
        assert other["b"].status is RefundStatus.SUCCEEDED
        assert cancel_intents(rig, payment) == [
            ("refund:b", "answered"),
            ("refund:a", "refused:exceeds_payment"),
        ]
        with pytest.raises(RefundExceedsPayment):  # asked again: the same answer
            rig.service.cancel(payment.id, request_id="a", amount="100000")
        assert requested(rig, payment) == [("b", "100000")]
        assert (rig.cancels_sent(payment), rig.refunded_at_nicepay(payment)) == (1, "100000")


# --- input, state and unknown payments ---------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"request_id": ""},
        {"request_id": "has space"},
        {"request_id": "x" * 65},
        {"request_id": "caf\u00e9"},
        {"request_id": 7},
        {"request_id": "ok", "amount": "0"},
        {"request_id": "ok", "amount": "-5"},
        {"request_id": "ok", "amount": "12.50"},
        {"request_id": "ok", "amount": 12.5},
        {"request_id": "ok", "reason": "two\nlines"},
        {"request_id": "ok", "reason": "r" * 256},
        {"request_id": "ok", "requested_by": ""},
        {"request_id": "ok", "actor": "status_inquiry"},
    ],
)
def test_a_malformed_request_is_refused_and_stores_nothing(
    rig: RefundRig, fields: dict[str, Any]
) -> None:
    payment = rig.paid("malformed")
    with pytest.raises(InvalidRefundRequest):
        rig.service.cancel(payment.id, **fields)
    assert rig.engine.get(payment.id) == payment
    assert cancel_intents(rig, payment) == []
    assert rig.cancels_sent(payment) == 0


def test_an_unpaid_or_unknown_payment_takes_no_request(rig: RefundRig) -> None:
    reference_no = f"RF-{rig.run}-unpaid"
    rig.sim.faults.notification(reference_no, drop=True, times=None)
    unpaid = rig.service.start_payment(demo_order(reference_no, Wallet.DANA)).instance
    with pytest.raises(CancelNotAllowed) as refused:
        rig.service.cancel(unpaid.id, request_id="rf-1")
    assert refused.value.rule == "state"
    assert rig.service.calls.of_instance(unpaid.id)[-1].call != Call.CANCEL
    with pytest.raises(InstanceNotFound):
        rig.service.cancel("no-such-payment", request_id="rf-1")
    assert rig.nicepay.calls.served() == {}
