"""Where the check of NICEPAY's total before a cancel, and the requests closed with no total,
still leave a payment that nobody can act on, or a request reserved that was never sent."""

from __future__ import annotations

import pytest

from adapters.errors import RefundTotalsDisagree
from adapters.nicepay.client import INQUIRY_PATH
from adapters.reconcile.intents import CALL_LEASE, Call
from adapters.reconcile.journal import Hold
from adapters.reconcile.recovery import Reconciler
from adapters.reconcile.refund_repair import (
    IN_DOUBT,
    REPAIRED_NO_TOTAL,
    REPAIRED_NOT_REFUNDED,
    SETTLED_NOT_REFUNDED,
    SETTLED_REFUNDED,
)
from adapters.refunds import RefundStatus
from fsm.store.leases import claim_owner
from tests.adapters.refund_rig import refund_rig
from tests.adapters.test_refund_claims import PAST_THE_WAIT, cancel_outcomes
from tests.adapters.test_refund_unheard import (
    REFUSED_FOR_GOOD,
    lost,
    passes_until_closed,
    settle,
)


def test_a_settlement_nicepays_later_total_contradicts_goes_back_in_doubt(db_url: str) -> None:
    with refund_rig(db_url) as rig:
        payment = lost(rig, "wrong-word", taken=True)  # NICEPAY took rf-1's 50000
        passes_until_closed(rig, payment, REFUSED_FOR_GOOD)
        # NICEPAY refuses the inquiry for good: the person's word stands, and it is wrong.
        assert settle(rig, payment, refunded=False) == SETTLED_NOT_REFUNDED
        rig.sim.faults.clear()  # NICEPAY answers again: 50000 refunded
        with pytest.raises(RefundTotalsDisagree):
            rig.service.cancel(payment.id, request_id="rf-2", amount="50000")
        assert rig.cancels_sent(payment) == 1
        # The settlement NICEPAY's exact total contradicts must be put back in doubt, as a
        # repair's not_refunded is; left settled:not_refunded, every later request is refused
        # and settle-refund refuses it (not in doubt): nobody can act on the payment.
        assert cancel_outcomes(rig, payment)[0] in IN_DOUBT
        assert settle(rig, payment, refunded=True) == SETTLED_REFUNDED
        again = rig.service.cancel(payment.id, request_id="rf-3", amount="100000")
        assert (again.status, again.refunded_amount) == (RefundStatus.SUCCEEDED, "150000")


def test_a_cancel_that_stopped_before_its_step_is_closed_without_a_total(db_url: str) -> None:
    with refund_rig(db_url) as rig:
        payment = rig.paid("stopped-in-check")
        # What a process that stopped during the inquiry before its cancel leaves: the intent
        # and its hold, no request_refund step, nothing sent.
        rig.service.calls.record(
            payment.id,
            Call.CANCEL,
            at=rig.clock.now(),
            reference_no=payment.reference_no,
            amount="50000",
            tx_id=payment.tx_id,
            request={"tXid": payment.tx_id, "amt": "50000", "cancelType": "2"},
            exclusive=True,
            call_key="refund:rf-1",
            hold=Hold(claim_owner("cancel"), CALL_LEASE),
        )
        # A paid answer states no cancelAmt (the reference promises it only with a refund).
        rig.sim.faults.response(INQUIRY_PATH, times=None, fields={"cancelAmt": None})
        rig.clock.advance(PAST_THE_WAIT)
        Reconciler(rig.service).repair_open_intents()
        # Without its step the cancel was never sent, whatever NICEPAY's total: the repair
        # needs no total to close it, instead of holding 50000 for six hours, then for a person.
        assert cancel_outcomes(rig, payment) == [REPAIRED_NOT_REFUNDED]
        assert rig.service.cancel(payment.id, request_id="rf-1").status is RefundStatus.FAILED


def test_a_refund_whose_inquiry_never_answers_usably_is_closed_for_a_person(db_url: str) -> None:
    with refund_rig(db_url) as rig:
        payment = lost(rig, "never-json", taken=True)
        # Every inquiry about this payment answers a body that is never JSON (MalformedResponse,
        # retryable): its repair never hears a total, as with NO_TOTAL, but the intent stays
        # open for good; settle-refund refuses an open request, and every other refund of the
        # payment is refused (CallInDoubt). Nobody can act on it.
        passes_until_closed(rig, payment, {"status": 200, "body": b"<html>busy</html>"})
        assert cancel_outcomes(rig, payment) == [REPAIRED_NO_TOTAL]
