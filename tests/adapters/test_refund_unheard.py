"""A refund request NICEPAY never states a total for is closed in doubt, and a person settles it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from adapters.errors import RefundExceedsPayment, RefundNotSettleable
from adapters.nicepay.client import CANCEL_PATH, INQUIRY_PATH
from adapters.reconcile.recovery import LONGEST_BACKOFF, LONGEST_UNHEARD, Reconciler
from adapters.reconcile.refund_repair import (
    REPAIRED_NO_TOTAL,
    SETTLED_NOT_REFUNDED,
    SETTLED_REFUNDED,
)
from adapters.refunds import RefundStatus, refund_request, settle_by_hand
from fsm.definition import Actor
from fsm.errors import ConfigurationError
from fsm.model import Instance
from tests.adapters.refund_rig import RefundRig, refund_rig
from tests.adapters.test_refund_claims import cancel_outcomes

NO_TOTAL = {"fields": {"cancelAmt": None}}
"""NICEPAY's answer says "refund" or "paid" and no cancelAmt."""
REFUSED_FOR_GOOD = {"body": {"resultCd": "9998", "resultMsg": "transaction unavailable"}}
"""NICEPAY refuses the inquiry about this payment (a code of no table), and will next time too."""
PASS = LONGEST_BACKOFF + timedelta(minutes=1)
"""Longer than any pause a failed repair keeps its payment for."""


def lost(rig: RefundRig, name: str, *, taken: bool) -> Instance:
    """A payment whose refund request rf-1 (50000) lost its answer; NICEPAY took it if
    ``taken``."""
    payment = rig.paid(name)
    rig.sim.faults.response(CANCEL_PATH, status=503, process=taken)
    refund = rig.service.cancel(payment.id, request_id="rf-1", amount="50000")
    assert refund.status is RefundStatus.IN_DOUBT
    return payment


def passes_until_closed(rig: RefundRig, payment: Instance, answer: dict[str, Any]) -> int:
    """Reconciler passes, a backoff apart, with every inquiry answered so, until rf-1 closes;
    how many it took. While it is open each pass reports it."""
    rig.sim.faults.response(INQUIRY_PATH, times=None, **answer)
    reconciler = Reconciler(rig.service)
    for count in range(1, 20):
        rig.clock.advance(PASS)
        repairs = reconciler.repair_open_intents()
        if cancel_outcomes(rig, payment) != [None]:
            return count
        assert [r.error is not None for r in repairs] == [True], repairs
    raise AssertionError("never closed")


def closed_unheard(rig: RefundRig, name: str, answer: dict[str, Any], *, taken: bool) -> Instance:
    """A payment whose rf-1 lost its answer and closed after NICEPAY answered so long enough."""
    payment = lost(rig, name, taken=taken)
    passes_until_closed(rig, payment, answer)
    return payment


def settle(rig: RefundRig, payment: Instance, *, refunded: bool) -> str | None:
    ask = refund_request(payment.id, request_id="rf-1", actor=Actor.OPERATOR)
    return settle_by_hand(rig.service, ask, refunded=refunded, reason="portal", by="dewi").outcome


@pytest.mark.parametrize("answer", [NO_TOTAL, REFUSED_FOR_GOOD], ids=["no-total", "refused"])
def test_a_refund_nicepay_never_states_a_total_for_is_closed_in_doubt_for_a_person(
    db_url: str, answer: dict[str, Any]
) -> None:
    with refund_rig(db_url) as rig:
        payment = lost(rig, "unheard", taken=True)
        passes = passes_until_closed(rig, payment, answer)
        assert passes * PASS >= LONGEST_UNHEARD > (passes - 1) * PASS
        assert cancel_outcomes(rig, payment) == [REPAIRED_NO_TOTAL]
        assert rig.service.cancel(payment.id, request_id="rf-1").status is RefundStatus.IN_DOUBT
        with pytest.raises(RefundExceedsPayment) as over:  # its amount stays reserved
            rig.service.cancel(payment.id, request_id="rf-2", amount="150000")
        # A refund answer without its total was taken for the whole amount: room left unused.
        assert over.value.refundable == ("0" if answer is NO_TOTAL else "100000")
        rig.clock.advance(PASS)
        Reconciler(rig.service).repair_open_intents()  # no repair opens it again
        assert cancel_outcomes(rig, payment) == [REPAIRED_NO_TOTAL]
        assert settle(rig, payment, refunded=True) == SETTLED_REFUNDED
        assert rig.service.cancel(payment.id, request_id="rf-1").status is RefundStatus.SUCCEEDED
        (note,) = [r for r in rig.engine.rejections(payment.id) if r.actor == Actor.OPERATOR]
        said = note.payload["nicepay_total"]
        assert said == (
            "no exact total" if answer is NO_TOTAL else "inquiry refused (ProviderRejected)"
        )


def test_a_person_who_says_a_refund_nicepay_never_got_failed_frees_its_amount(
    db_url: str,
) -> None:
    with refund_rig(db_url) as rig:
        payment = closed_unheard(rig, "never-got", REFUSED_FOR_GOOD, taken=False)
        assert settle(rig, payment, refunded=False) == SETTLED_NOT_REFUNDED
        assert rig.service.cancel(payment.id, request_id="rf-1").status is RefundStatus.FAILED
        rig.sim.faults.clear()
        again = rig.service.cancel(payment.id, request_id="rf-2", amount="150000")
        assert (again.status, again.refunded_amount) == (RefundStatus.SUCCEEDED, "150000")


def test_a_total_nicepay_states_again_overrules_a_person_it_contradicts(db_url: str) -> None:
    with refund_rig(db_url) as rig:
        payment = closed_unheard(rig, "contradicted", NO_TOTAL, taken=True)
        rig.sim.faults.clear()  # NICEPAY states its total (50000) again
        with pytest.raises(RefundNotSettleable, match="repaired:refunded"):
            settle(rig, payment, refunded=False)
        assert cancel_outcomes(rig, payment) == [REPAIRED_NO_TOTAL]
        assert settle(rig, payment, refunded=True) == SETTLED_REFUNDED


def test_an_inquiry_that_may_answer_shortly_holds_the_settlement_back(db_url: str) -> None:
    with refund_rig(db_url) as rig:
        payment = closed_unheard(rig, "outage", NO_TOTAL, taken=True)
        rig.sim.faults.clear()
        rig.sim.faults.response(INQUIRY_PATH, status=503, times=None)
        with pytest.raises(RefundNotSettleable, match="try again"):
            settle(rig, payment, refunded=False)
        assert cancel_outcomes(rig, payment) == [REPAIRED_NO_TOTAL]


def test_a_refused_inquiry_about_our_own_credentials_does_not_silence_nicepay(
    db_url: str,
) -> None:
    with refund_rig(db_url) as rig:
        payment = closed_unheard(rig, "wrong-key", NO_TOTAL, taken=True)
        rig.sim.faults.clear()
        wrong_key = {"resultCd": "9010", "resultMsg": "invalid merchantToken"}
        rig.sim.faults.response(INQUIRY_PATH, body=wrong_key, times=None)
        with pytest.raises(RefundNotSettleable, match="merchant key"):
            settle(rig, payment, refunded=False)
        assert cancel_outcomes(rig, payment) == [REPAIRED_NO_TOTAL]


def test_a_reconciler_needs_a_positive_longest_unheard(db_url: str) -> None:
    with refund_rig(db_url) as rig, pytest.raises(ConfigurationError, match="unheard"):
        Reconciler(rig.service, longest_unheard=timedelta(0))
