"""Each cancel first asks NICEPAY's refunded total and goes out only when the journal accounts
for it (:mod:`adapters.refunds.total_check`)."""

from __future__ import annotations

import pytest

from adapters.errors import RefundExceedsPayment, RefundTotalsDisagree
from adapters.nicepay.client import INQUIRY_PATH
from adapters.reconcile.recovery import Reconciler
from adapters.reconcile.refund_repair import (
    REPAIRED_IN_DOUBT,
    REPAIRED_NOT_REFUNDED,
    REPAIRED_REFUNDED,
)
from adapters.refunds import RefundStatus
from adapters.refunds.cancel import EXCEEDS_PAYMENT
from adapters.refunds.total_check import INQUIRY_FAILED, TOTALS_DISAGREE
from fsm.model import Instance
from tests.adapters.refund_rig import RefundRig, refund_rig
from tests.adapters.test_refund_claims import PAST_THE_CLAIM, cancel_outcomes
from tests.adapters.test_refund_races import taken_then


def closed_too_early(rig: RefundRig, payment: Instance) -> None:
    """What a replica whose clock ran behind leaves when it stops: NICEPAY took rf-1 (50000),
    its answer was never stored, and a repair that asked before the cancel landed closed it as
    not refunded."""
    assert taken_then(rig, payment, status=503).status is RefundStatus.IN_DOUBT
    intent = rig.service.calls.by_key(payment.id, "refund:rf-1")
    assert intent is not None
    closed = rig.service.calls.close_repaired(
        intent, outcome=REPAIRED_NOT_REFUNDED, at=rig.clock.now()
    )
    assert closed
    assert cancel_outcomes(rig, payment) == [REPAIRED_NOT_REFUNDED]


def succeeds(rig: RefundRig, payment: Instance, request_id: str, amount: str, total: str) -> None:
    """Refund request ``request_id`` of ``amount`` goes through, NICEPAY's total then ``total``."""
    refund = rig.service.cancel(payment.id, request_id=request_id, amount=amount)
    assert (refund.status, refund.refunded_amount) == (RefundStatus.SUCCEEDED, total), refund


def test_a_refund_the_journal_wrongly_counts_as_failed_is_not_paid_out_again(db_url: str) -> None:
    with refund_rig(db_url) as rig:
        payment = rig.paid("closed-too-early")
        closed_too_early(rig, payment)
        # The merchant, told rf-1 failed, asks again under a new id: nothing is sent.
        with pytest.raises(RefundTotalsDisagree) as refused:
            rig.service.cancel(payment.id, request_id="rf-2", amount="50000")
        assert (refused.value.nicepay_total, refused.value.payment_id) == (50000, payment.id)
        assert (rig.cancels_sent(payment), rig.refunded_at_nicepay(payment)) == (1, "50000")
        # rf-1 is in doubt again, its amount reserved; rf-2 answers the same, every time.
        assert cancel_outcomes(rig, payment) == [REPAIRED_IN_DOUBT, f"refused:{TOTALS_DISAGREE}"]
        assert rig.service.cancel(payment.id, request_id="rf-1").status is RefundStatus.IN_DOUBT
        with pytest.raises(RefundTotalsDisagree):
            rig.service.cancel(payment.id, request_id="rf-2")
        # The reconciler settles rf-1 from NICEPAY's total; then the rest may be refunded.
        rig.clock.advance(PAST_THE_CLAIM)
        Reconciler(rig.service).run_once()
        rig.clock.advance(PAST_THE_CLAIM)
        Reconciler(rig.service).run_once()
        assert cancel_outcomes(rig, payment)[0] == REPAIRED_REFUNDED
        assert rig.service.cancel(payment.id, request_id="rf-1").status is RefundStatus.SUCCEEDED
        succeeds(rig, payment, "rf-3", "100000", "150000")
        assert rig.cancels_sent(payment) == 2


def test_a_refund_made_outside_the_library_counts_against_what_is_left(db_url: str) -> None:
    with refund_rig(db_url) as rig:
        payment = rig.paid("outside")
        # Someone refunds 30000 at NICEPAY directly (its dashboard, another system).
        tx_id, reference_no = payment.tx_id or "", payment.reference_no or ""
        rig.service.client.cancel(tx_id, reference_no, "30000", partial=True, reason="desk")
        # No cancel of the library's explains it: nothing is put in doubt, and it counts.
        with pytest.raises(RefundExceedsPayment) as over:
            rig.service.cancel(payment.id, request_id="rf-1", amount="130000")
        assert over.value.refundable == "120000"
        succeeds(rig, payment, "rf-2", "120000", "150000")
        assert cancel_outcomes(rig, payment) == [f"refused:{EXCEEDS_PAYMENT}", "answered"]


def test_an_answer_about_another_transaction_sends_nothing(db_url: str) -> None:
    with refund_rig(db_url) as rig:
        payment = rig.paid("echo")
        rig.sim.faults.response(INQUIRY_PATH, fields={"amt": "1"})
        refund = rig.service.cancel(payment.id, request_id="rf-1", amount="50000")
        assert (refund.status, refund.provider_code) == (RefundStatus.FAILED, INQUIRY_FAILED)
        assert rig.cancels_sent(payment) == 0


def test_a_failed_inquiry_before_the_cancel_sends_nothing(db_url: str) -> None:
    with refund_rig(db_url) as rig:
        payment = rig.paid("no-inquiry")
        rig.sim.faults.response(INQUIRY_PATH, status=503, times=None)
        refund = rig.service.cancel(payment.id, request_id="rf-1", amount="50000")
        assert (refund.status, refund.provider_code) == (RefundStatus.FAILED, INQUIRY_FAILED)
        assert cancel_outcomes(rig, payment) == [f"unsent:{INQUIRY_FAILED}"]
        assert (rig.cancels_sent(payment), rig.refunded_at_nicepay(payment)) == (0, "0")
        assert rig.service.calls.still_open(instance_id=payment.id) == []
        rig.sim.faults.clear()
        succeeds(rig, payment, "rf-2", "50000", "50000")


def test_a_total_nicepay_does_not_state_lets_the_cancel_go(db_url: str) -> None:
    with refund_rig(db_url) as rig:
        payment = rig.paid("no-total")
        # A paid answer without cancelAmt: no evidence of a refund either way.
        rig.sim.faults.response(INQUIRY_PATH, fields={"cancelAmt": None})
        succeeds(rig, payment, "rf-1", "50000", "50000")
        assert rig.cancels_sent(payment) == 1


def test_a_total_within_what_the_journal_reserves_lets_the_cancel_go(db_url: str) -> None:
    with refund_rig(db_url) as rig:
        payment = rig.paid("reserved")
        succeeds(rig, payment, "rf-1", "50000", "50000")
        succeeds(rig, payment, "rf-2", "50000", "100000")
        assert rig.cancels_sent(payment) == 2
