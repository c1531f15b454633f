"""A refund repair reads a void's answer as the whole amount returned, whatever its ``cancelAmt``
says, and an inquiry that fails with a passing error for good pauses for longer and longer
instead of being asked on every pass. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.nicepay.client import CANCEL_PATH, INQUIRY_PATH
from adapters.reconcile.recovery import Reconciler
from adapters.reconcile.refund_repair import REPAIRED_NOT_REFUNDED
from adapters.refunds import RefundStatus
from tests.adapters.refund_rig import refund_rig
from tests.adapters.test_refund_claims import PAST_THE_CLAIM, cancel_outcomes


@pytest.mark.parametrize("said", [None, "0"])
def test_a_void_nicepay_took_is_repaired_even_when_its_answer_states_no_total(
    db_url: str, said: str | None
) -> None:
    # The whole amount is cancelled (a void: status 1), its answer lost. NICEPAY's inquiry
    # reports the void; §10 promises cancelAmt only with a refund (status 2), so the void's
    # answer may carry none, or "0". The void returned the whole amount either way.
    with refund_rig(db_url) as rig:
        payment = rig.paid("void-no-total")
        rig.sim.faults.response(CANCEL_PATH, status=503, process=True)
        lost = rig.service.cancel(payment.id, request_id="rf-1", amount=payment.amount)
        assert lost.status is RefundStatus.IN_DOUBT
        assert rig.refunded_at_nicepay(payment) == payment.amount
        rig.clock.advance(PAST_THE_CLAIM)
        rig.sim.faults.response(INQUIRY_PATH, fields={"cancelAmt": said}, times=None)
        (repair,) = Reconciler(rig.service).repair_open_intents()
        outcomes = cancel_outcomes(rig, payment)
        assert outcomes != [REPAIRED_NOT_REFUNDED], "a void that took the money called failed"
        assert outcomes != [None], f"a taken void left open, unrepairable: {repair}"
        assert rig.engine.get(payment.id).state == "voided"


def test_a_repair_whose_inquiry_fails_retryably_for_good_backs_off_at_some_point(
    db_url: str,
) -> None:
    # NICEPAY (or a proxy before it) answers this inquiry with a 2xx that is not JSON, for good:
    # MalformedResponse is retryable, so no pass ever backs off; each pass sends the client's
    # every retry again, for as long as the reconciler runs.
    with refund_rig(db_url) as rig:
        payment = rig.paid("malformed")
        rig.sim.faults.response(CANCEL_PATH, status=503, process=True)
        assert rig.service.cancel(payment.id, request_id="rf-1", amount="50000").status is (
            RefundStatus.IN_DOUBT
        )
        rig.clock.advance(timedelta(hours=4))
        rig.sim.faults.response(INQUIRY_PATH, status=200, body=b"<html>busy</html>", times=None)
        reconciler = Reconciler(rig.service)
        asked = []
        for _ in range(12):  # every pass for a lease and a second: 24 minutes
            asked += [r for r in reconciler.repair_open_intents() if r.call == "cancel"]
            rig.clock.advance(reconciler.lease + timedelta(seconds=1))
        assert all(r.error and r.retryable for r in asked)
        assert len(asked) < 12, f"asked NICEPAY on each of {len(asked)} passes, no bound"
