"""Refunds a repair cannot settle at once, on SQLite and PostgreSQL, NICEPAY on loopback.

- a cancel whose answer was lost after its repair, while another request was open, is in doubt:
  NICEPAY's cumulative total may not tell which of the two took the money, and then neither is
  told failed nor refunded; each stays in doubt, its amount reserved, until a person settles it;
- once no other cancel of the payment is open, a repair opens such a cancel again and settles it
  from the total, whichever way it went;
- cancels whose inquiry NICEPAY refuses for good, as many as a pass takes, do not keep a newer
  lost refund from its repair;
- a cancel whose hold runs past the longest a reconciler waits for (another replica's lease) is
  reported for a person within that bound, and never closed as not refunded meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from adapters.errors import RefundExceedsPayment, RefundNotSettleable
from adapters.nicepay.client import CANCEL_PATH
from adapters.reconcile.recovery import LONGEST_HOLD, SUSPECT_HOLD, Reconciler
from adapters.reconcile.refund_repair import (
    LOST_AFTER_REPAIR,
    REPAIRED_IN_DOUBT,
    REPAIRED_NOT_REFUNDED,
    REPAIRED_REFUNDED,
    SETTLED_NOT_REFUNDED,
    SETTLED_REFUNDED,
)
from adapters.refunds import RefundStatus, refund_request, settle_by_hand
from adapters.service import PaymentService
from fsm.definition import Actor
from fsm.errors import RejectReason
from fsm.model import Instance
from fsm.refunds import REQUEST_REFUND
from tests.adapters.counted_nicepay import GATE_LIMIT
from tests.adapters.refund_rig import UNUSED_URL, RefundRig, refund_rig
from tests.adapters.test_refund_claims import (
    PAST_THE_CLAIM,
    PAST_THE_WAIT,
    cancel_in_background,
    cancel_outcomes,
    gated_rig,
)
from tests.adapters.test_refund_races import taken_then
from tests.conftest import database


def statuses(rig: RefundRig, payment: Instance, *request_ids: str) -> list[RefundStatus]:
    return [rig.service.cancel(payment.id, request_id=rid).status for rid in request_ids]


def refundable(rig: RefundRig, payment: Instance) -> str:
    """What the library says is left to refund, asked with a request for the whole amount."""
    with pytest.raises(RefundExceedsPayment) as over:
        rig.service.cancel(payment.id, request_id="rf-whole", amount="150000")
    return over.value.refundable


@contextmanager
def stalled_before_sending(
    rig: RefundRig, request_id: str
) -> Iterator[tuple[threading.Event, Callable[[], None]]]:
    """The request's process stops after its intent, its inquiry and its step, before its
    cancel, until the block calls the function it is given; the event is set once it stops."""
    stepped, go = threading.Event(), threading.Event()
    fire = rig.engine.fire_with_retry

    def stall(*args: Any, **kwargs: Any) -> Any:
        fired = fire(*args, **kwargs)
        if args[1] == REQUEST_REFUND and kwargs.get("idempotency_key") == f"refund:{request_id}":
            stepped.set()
            assert go.wait(GATE_LIMIT)
        return fired

    rig.engine.fire_with_retry = stall  # type: ignore[method-assign]
    assert not stepped.is_set()
    try:
        yield stepped, go.set
    finally:
        go.set()
        rig.engine.fire_with_retry = fire  # type: ignore[method-assign]
    assert stepped.is_set()


def lost_after_repair_then_second(
    rig: RefundRig, payment: Instance, gate: Any, *, first_taken: bool, second: dict[str, Any]
) -> Future[Any]:
    """rf-1 (50000) outlasts its repair's wait, closed not refunded; rf-2 (50000) is recorded,
    then rf-1's answer is lost (NICEPAY carried it out or not, ``first_taken``), so rf-1 closes
    ``lost:after_repair``; then rf-2's cancel goes out and NICEPAY answers it with ``second``
    (a fault, or nothing). Returns rf-2's outcome to come."""
    pool = ThreadPoolExecutor(1)
    with cancel_in_background(rig, payment, gate) as first:
        rig.clock.advance(PAST_THE_WAIT)
        Reconciler(rig.service).repair_open_intents()
        assert cancel_outcomes(rig, payment) == [REPAIRED_NOT_REFUNDED]
        with stalled_before_sending(rig, "rf-2") as (stepped, send_second):
            requested = pool.submit(
                rig.service.cancel, payment.id, request_id="rf-2", amount="50000"
            )
            # rf-2's intent is recorded and NICEPAY's total asked, before rf-1 lands
            assert stepped.wait(GATE_LIMIT)
            rig.sim.faults.response(CANCEL_PATH, status=503, process=first_taken)
            gate.open()
            assert first.result(GATE_LIMIT).status is RefundStatus.IN_DOUBT
            assert cancel_outcomes(rig, payment) == [LOST_AFTER_REPAIR, None]
            if second:
                rig.sim.faults.response(CANCEL_PATH, **second)
            send_second()
    pool.shutdown(wait=False)
    return requested


def test_a_total_that_fits_either_of_two_cancels_leaves_both_in_doubt(db_url: str) -> None:
    with gated_rig(db_url, CANCEL_PATH) as (rig, gate):
        payment = rig.paid("either")
        # rf-1 never reached NICEPAY; rf-2 did, and its answer was lost as well.
        second = lost_after_repair_then_second(
            rig, payment, gate, first_taken=False, second={"status": 503, "process": True}
        )
        assert second.result(GATE_LIMIT).status is RefundStatus.IN_DOUBT
        rig.sim.faults.clear()
        assert rig.refunded_at_nicepay(payment) == "50000"
        rig.clock.advance(PAST_THE_CLAIM)
        Reconciler(rig.service).repair_open_intents()
        # 50000 is rf-1's as much as rf-2's: rf-2 took it, and must never be told failed.
        assert cancel_outcomes(rig, payment) == [LOST_AFTER_REPAIR, REPAIRED_IN_DOUBT]
        Reconciler(rig.service).repair_open_intents()  # in doubt beside rf-2: a person's
        assert cancel_outcomes(rig, payment) == [LOST_AFTER_REPAIR, REPAIRED_IN_DOUBT]
        assert statuses(rig, payment, "rf-1", "rf-2") == [RefundStatus.IN_DOUBT] * 2
        assert refundable(rig, payment) == "50000"  # both reserved: nothing refunded twice
        # A person who looked at NICEPAY's records settles rf-1; a repair then settles rf-2.
        ask = refund_request(payment.id, request_id="rf-1", actor=Actor.OPERATOR)
        with pytest.raises(RefundNotSettleable):  # no such request
            settle_by_hand(
                rig.service,
                refund_request(payment.id, request_id="rf-3"),
                refunded=True,
                reason="r",
                by="b",
            )
        settled = settle_by_hand(
            rig.service, ask, refunded=False, reason="portal: one cancel", by="alice"
        )
        assert settled.outcome == SETTLED_NOT_REFUNDED
        (note,) = [r for r in rig.engine.rejections(payment.id) if r.actor == Actor.OPERATOR]
        assert (note.reason, note.payload["operator"], note.payload["reason"]) == (
            RejectReason.SETTLED_BY_HAND,
            "alice",
            "portal: one cancel",
        )
        with pytest.raises(RefundNotSettleable):  # settled already
            settle_by_hand(rig.service, ask, refunded=True, reason="again", by="bob")
        Reconciler(rig.service).repair_open_intents()
        assert cancel_outcomes(rig, payment) == [SETTLED_NOT_REFUNDED, REPAIRED_REFUNDED]
        assert statuses(rig, payment, "rf-1", "rf-2") == [
            RefundStatus.FAILED,
            RefundStatus.SUCCEEDED,
        ]
        assert refundable(rig, payment) == "100000"
        assert rig.cancels_sent(payment) == 2


def test_a_cancel_lost_after_its_repair_is_settled_once_no_other_is_open(db_url: str) -> None:
    with gated_rig(db_url, CANCEL_PATH) as (rig, gate):
        payment = rig.paid("reopened")
        # rf-1 never reached NICEPAY; rf-2 did, and was answered.
        second = lost_after_repair_then_second(rig, payment, gate, first_taken=False, second={})
        assert second.result(GATE_LIMIT).status is RefundStatus.SUCCEEDED
        assert cancel_outcomes(rig, payment) == [LOST_AFTER_REPAIR, "answered"]
        assert refundable(rig, payment) == "50000"  # rf-1 is reserved while in doubt
        rig.clock.advance(PAST_THE_CLAIM)
        Reconciler(rig.service).repair_open_intents()
        assert cancel_outcomes(rig, payment) == [REPAIRED_NOT_REFUNDED, "answered"]
        assert statuses(rig, payment, "rf-1", "rf-2") == [
            RefundStatus.FAILED,
            RefundStatus.SUCCEEDED,
        ]
        assert refundable(rig, payment) == "100000"
        assert rig.refunded_at_nicepay(payment) == "50000"


def test_a_person_may_not_settle_against_nicepays_total(db_url: str) -> None:
    with gated_rig(db_url, CANCEL_PATH) as (rig, gate):
        payment = rig.paid("contradicted")
        # rf-1 reached NICEPAY, its answer lost; rf-2 was answered: the total holds both.
        second = lost_after_repair_then_second(rig, payment, gate, first_taken=True, second={})
        assert second.result(GATE_LIMIT).status is RefundStatus.SUCCEEDED
        assert rig.refunded_at_nicepay(payment) == "100000"
        ask = refund_request(payment.id, request_id="rf-1", actor=Actor.OPERATOR)
        with pytest.raises(RefundNotSettleable) as refused:
            settle_by_hand(rig.service, ask, refunded=False, reason="r", by="b")
        assert "repaired:refunded" in str(refused.value)
        assert cancel_outcomes(rig, payment) == [LOST_AFTER_REPAIR, "answered"]
        settled = settle_by_hand(rig.service, ask, refunded=True, reason="portal", by="carol")
        assert settled.outcome == SETTLED_REFUNDED
        assert statuses(rig, payment, "rf-1") == [RefundStatus.SUCCEEDED]
        assert refundable(rig, payment) == "50000"


def test_cancels_nicepay_refuses_to_inquire_about_do_not_starve_a_newer_lost_refund(
    db_url: str,
) -> None:
    limit = 2
    with refund_rig(db_url) as rig:
        store = database(rig.engine)
        refused = [rig.paid(f"refused-{n}") for n in range(limit)]
        for payment in refused:
            assert taken_then(rig, payment, status=503).status is RefundStatus.IN_DOUBT
        # NICEPAY refuses every inquiry about them for good: their referenceNo no longer fits.
        with store.engine.begin() as conn:
            for payment in refused:
                statement = text("update flow_instance set reference_no = :r where id = :i")
                conn.execute(statement, {"r": f"X{payment.reference_no}", "i": payment.id})
        rig.clock.advance(timedelta(seconds=1))
        newer = rig.paid("newer")
        assert taken_then(rig, newer, status=503).status is RefundStatus.IN_DOUBT
        rig.clock.advance(PAST_THE_CLAIM)
        passes = [Reconciler(rig.service, limit=limit).repair_open_intents() for _ in range(3)]
        assert [r.outcome for r in passes[0]] == ["open"] * limit
        assert all(r.error for r in passes[0])
        assert cancel_outcomes(rig, newer) == [REPAIRED_REFUNDED]
        assert statuses(rig, newer, "rf-1") == [RefundStatus.SUCCEEDED]
        for payment in refused:  # never closed on a refused inquiry: money may have moved
            assert cancel_outcomes(rig, payment) == [None]
        with store.engine.begin() as conn:  # put them right, for the rig's audit
            for payment in refused:
                statement = text("update flow_instance set reference_no = :r where id = :i")
                conn.execute(statement, {"r": payment.reference_no, "i": payment.id})


def test_a_hold_past_the_longest_is_reported_and_never_closed_not_refunded(db_url: str) -> None:
    with gated_rig(db_url, CANCEL_PATH) as (rig, gate):
        payment = rig.paid("long-hold")
        # A replica whose cancels hold their payment for a day.
        replica = PaymentService(
            rig.engine,
            rig.service.client,
            store=database(rig.engine),
            notification_url=UNUSED_URL,
            callback_url=UNUSED_URL,
            cancel_lease=timedelta(days=1),
        )
        gate.close()
        with ThreadPoolExecutor(1) as pool:
            cancelling = pool.submit(replica.cancel, payment.id, request_id="rf-1", amount="50000")
            gate.wait_for_call()
            reconciler = Reconciler(rig.service)
            within = reconciler.repair_open_intents(now=rig.clock.now() + LONGEST_HOLD)
            assert within == []  # still within what a reconciler waits for
            later = rig.clock.now() + LONGEST_HOLD + PAST_THE_CLAIM
            (report,) = reconciler.repair_open_intents(now=later)
            assert (report.instance_id, report.outcome) == (payment.id, SUSPECT_HOLD)
            assert "longest hold" in str(report.error)
            assert cancel_outcomes(rig, payment) == [None]
            rig.clock.advance(LONGEST_HOLD + PAST_THE_CLAIM)
            assert statuses(rig, payment, "rf-1") == [RefundStatus.IN_DOUBT]
            gate.open()
            refund = cancelling.result(GATE_LIMIT)
        assert (refund.status, refund.refunded_amount) == (RefundStatus.SUCCEEDED, "50000")
        assert cancel_outcomes(rig, payment) == ["answered"]
        assert rig.cancels_sent(payment) == 1
