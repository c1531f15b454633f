"""Where a refund's money and what the library says of it part ways, on SQLite and PostgreSQL.

Every test here states what must hold (NICEPAY on loopback, the simulator counting the cancels
it carried out): a request NICEPAY refunded is never told failed or declined, a request it did
not refund is never told succeeded, and a lost refund is repaired in the end. Each plays one
order of events:

- a repair that found a cancel's claim run out, and waited a grace after it, closes its intent
  ``repaired:not_refunded`` while the cancel is still on its way, which frees the payment for
  the next request: the late cancel's lost answer cannot open its intent again while that
  request is open (it stays in doubt, reserved), and the next request counts nothing refunded
  before it (its repair counts the late cancel first);
- a cancel whose caller gave up waiting is carried out by NICEPAY after a repair asked;
- a repair held past its own claim closes, on its old inquiry, an intent opened again since;
- an answer that cannot say whether the cancel took effect (a bare HTTP refusal, an
  undocumented ``resultCd``), and an inquiry answer the repair did not apply;
- open intents no repair can close, which take every pass's places;
- a payment id no database stores.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from adapters.errors import InvalidRefundRequest, RefundExceedsPayment
from adapters.nicepay.client import CANCEL_PATH, INQUIRY_PATH
from adapters.reconcile.deadlines import DEFAULT_LEASE
from adapters.reconcile.intents import Call
from adapters.reconcile.recovery import Reconciler
from adapters.reconcile.refund_repair import (
    ANSWERED_AFTER_REPAIR,
    LEFT_OPEN,
    REPAIRED_NOT_REFUNDED,
    REPAIRED_REFUNDED,
)
from adapters.refunds import Refund, RefundStatus
from adapters.service import PaymentService
from fsm.clock import ManualClock
from fsm.errors import InstanceNotFound
from fsm.model import Instance
from fsm.refunds import REQUEST_REFUND
from fsm.store.sql import SqlStore
from tests.adapters.counted_nicepay import GATE_LIMIT, Gate
from tests.adapters.refund_rig import RefundRig, merchant, refund_rig
from tests.adapters.test_refund_claims import (
    PAST_THE_CLAIM,
    PAST_THE_WAIT,
    PausedRepair,
    cancel_in_background,
    cancel_outcomes,
    gated_rig,
    in_background,
    late_answers,
    told,
)
from tests.conftest import database


def succeeded_total(rig: RefundRig, payment: Instance, request_ids: list[str]) -> int:
    """What the library says the requests refunded, asked again by their ids."""
    answers = [rig.service.cancel(payment.id, request_id=rid) for rid in request_ids]
    return sum(int(a.amount) for a in answers if a.status is RefundStatus.SUCCEEDED)


class _CancelsGoNowhere(httpx.BaseTransport):
    """Loopback HTTP on which a cancel never arrives: the connection for it is refused."""

    def __init__(self) -> None:
        self._through = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(CANCEL_PATH):
            raise httpx.ConnectError("cancel cut off", request=request)
        return self._through.handle_request(request)

    def close(self) -> None:
        self._through.close()


def cut_off(rig: RefundRig, http: httpx.Client) -> PaymentService:
    """A merchant process on ``http`` (over :class:`_CancelsGoNowhere`): its cancels never reach
    NICEPAY (its inquiries do), and it cannot tell that from an answer lost on the way back."""
    return merchant(rig.engine, database(rig.engine), rig.nicepay.client(http, rig.clock))


def test_a_late_lost_cancel_is_not_failed_while_another_request_is_open(db_url: str) -> None:
    with gated_rig(db_url, CANCEL_PATH) as (rig, gate):
        payment = rig.paid("late-lost-other")
        with cancel_in_background(rig, payment, gate) as first:
            rig.clock.advance(PAST_THE_WAIT)  # rf-1 is still held on its way to NICEPAY
            Reconciler(rig.service).repair_open_intents()
            assert cancel_outcomes(rig, payment) == [REPAIRED_NOT_REFUNDED]
            # Both cancels reach NICEPAY, which refunds each; both answers are lost.
            rig.sim.faults.response(CANCEL_PATH, status=503, process=True, times=None)
            second = in_background(
                lambda: rig.service.cancel(payment.id, request_id="rf-2", amount="50000"), gate
            )
            with second as requested:
                pass
        told_first, told_second = first.result(), requested.result()
        rig.sim.faults.clear()
        assert (rig.cancels_sent(payment), rig.refunded_at_nicepay(payment)) == (2, "100000")
        assert told_second.status is RefundStatus.IN_DOUBT
        assert [r.payload["answer"] for r in late_answers(rig, payment)] == ["lost"]
        # rf-1's answer was lost: NICEPAY may have taken it (it did), so it is not "failed".
        assert told_first.status is RefundStatus.IN_DOUBT, told_first
        rig.clock.advance(PAST_THE_CLAIM)
        Reconciler(rig.service).repair_open_intents()
        assert rig.engine.get(payment.id).refunded_amount == "100000"
        # rf-1 stays in doubt with its amount reserved, for a person (its late answer is logged
        # and recorded); rf-2 is settled by its repair, NICEPAY's total counting rf-1 first.
        told = {
            rid: rig.service.cancel(payment.id, request_id=rid).status for rid in ("rf-1", "rf-2")
        }
        assert told == {"rf-1": RefundStatus.IN_DOUBT, "rf-2": RefundStatus.SUCCEEDED}
        with pytest.raises(RefundExceedsPayment) as over:
            rig.service.cancel(payment.id, request_id="rf-3", amount="150000")
        assert over.value.refundable == "50000"
        # No other cancel is open now: the next pass opens rf-1 again and settles it.
        Reconciler(rig.service).repair_open_intents()
        assert cancel_outcomes(rig, payment) == [REPAIRED_REFUNDED, REPAIRED_REFUNDED]
        assert rig.service.cancel(payment.id, request_id="rf-1").status is RefundStatus.SUCCEEDED
        assert rig.cancels_sent(payment) == 2


class LateToTakeIn(Gate):
    """Holds cancels, their requests taken in, as a :class:`Gate` does; each reaches NICEPAY
    ``late`` after its intent was recorded (the merchant's process stalled in between)."""

    def __init__(self, late: timedelta) -> None:
        super().__init__(CANCEL_PATH, takes_in=True)
        self.late = late
        self.clock: ManualClock | None = None

    async def pass_through(self, path: str) -> None:
        if path.endswith(self.path) and self.clock is not None:
            self.clock.advance(self.late)
        await super().pass_through(path)


def until_served(rig: RefundRig, payment: Instance) -> None:
    """Wait for NICEPAY to carry out the cancel it held (nobody waits for its answer)."""
    for _ in range(int(GATE_LIMIT * 100)):
        if rig.cancels_sent(payment):
            return
        threading.Event().wait(0.01)
    raise AssertionError("NICEPAY never carried out the held cancel")


def test_a_cancel_nicepay_carries_out_after_its_caller_gave_up_is_not_failed(db_url: str) -> None:
    gate = LateToTakeIn(PAST_THE_CLAIM)
    # A merchant process that waits 2 s for NICEPAY's answer, then leaves the cancel in doubt.
    with refund_rig(db_url, gates=[gate]) as rig, httpx.Client(timeout=2.0) as http:
        gate.clock = rig.clock
        payment = rig.paid("gave-up")
        impatient = merchant(rig.engine, database(rig.engine), rig.nicepay.client(http, rig.clock))
        gate.close()
        try:
            refund = impatient.cancel(payment.id, request_id="rf-1", amount="50000")
            assert told(refund) == (RefundStatus.IN_DOUBT, "paid", "0")
            # A reconciler pass right after: the intent is older than the grace.
            Reconciler(rig.service).repair_open_intents()
        finally:
            gate.open()
        until_served(rig, payment)
        assert rig.refunded_at_nicepay(payment) == "50000"
        rig.clock.advance(PAST_THE_CLAIM)
        Reconciler(rig.service).run_once()
        again = rig.service.cancel(payment.id, request_id="rf-1")
        assert (again.status, again.refunded_amount) == (RefundStatus.SUCCEEDED, "50000"), again


def test_a_request_that_never_reached_nicepay_is_not_told_refunded_by_anothers_late_cancel(
    db_url: str,
) -> None:
    cancels_cut = httpx.Client(timeout=10.0, transport=_CancelsGoNowhere())
    with gated_rig(db_url, CANCEL_PATH) as (rig, gate), cancels_cut as http:
        payment = rig.paid("late-other-counted")
        with cancel_in_background(rig, payment, gate) as first:
            rig.clock.advance(PAST_THE_WAIT)  # rf-1 is still held on its way to NICEPAY
            Reconciler(rig.service).repair_open_intents()
            assert cancel_outcomes(rig, payment) == [REPAIRED_NOT_REFUNDED]
            # rf-2 counts nothing refunded before it, and its cancel never reaches NICEPAY.
            second = cut_off(rig, http).cancel(payment.id, request_id="rf-2", amount="50000")
            assert second.status is RefundStatus.IN_DOUBT
        assert told(first.result()) == (RefundStatus.SUCCEEDED, "refunded", "50000")
        assert cancel_outcomes(rig, payment) == [ANSWERED_AFTER_REPAIR, None]
        rig.clock.advance(PAST_THE_CLAIM)
        Reconciler(rig.service).repair_open_intents()
        assert (rig.cancels_sent(payment), rig.refunded_at_nicepay(payment)) == (1, "50000")
        # NICEPAY refunded rf-1 alone: rf-2 took nothing, whatever the total now covers.
        assert cancel_outcomes(rig, payment)[1] != REPAIRED_REFUNDED
        assert succeeded_total(rig, payment, ["rf-1", "rf-2"]) == 50000


NO_KNOWN_REFUSAL: dict[str, dict[str, Any]] = {
    "bare-403": {"status": 403},  # a page with no resultCd (a firewall in front of NICEPAY, say)
    "undocumented-code": {"body": {"resultCd": "9999", "resultMsg": "undocumented"}},
}
UNAPPLIED_INQUIRY: dict[str, dict[str, Any]] = {
    "paid-with-cancelAmt": {"status": "0"},  # still "paid" (unconfirmed), its cancelAmt set
    "unknown-status": {"status": "77"},  # a code of no table: recorded, and nothing applied
}


def each_answer(answers: dict[str, dict[str, Any]]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("answer", list(answers.values()), ids=list(answers))


def taken_then(rig: RefundRig, payment: Instance, **answer: Any) -> Refund:
    """Refund request ``rf-1`` of 50000, which NICEPAY carries out and answers with ``answer``."""
    rig.sim.faults.response(CANCEL_PATH, process=True, **answer)
    refund = rig.service.cancel(payment.id, request_id="rf-1", amount="50000")
    assert rig.refunded_at_nicepay(payment) == "50000"
    return refund


@each_answer(NO_KNOWN_REFUSAL)
def test_a_cancel_nicepay_took_but_answered_with_no_known_refusal_is_not_declined(
    db_url: str, answer: dict[str, Any]
) -> None:
    with refund_rig(db_url) as rig:
        refund = taken_then(rig, rig.paid("no-known-refusal"), **answer)
        assert refund.status is not RefundStatus.DECLINED, refund


@each_answer(UNAPPLIED_INQUIRY)
def test_a_repair_whose_inquiry_was_not_applied_does_not_call_a_taken_refund_failed(
    db_url: str, answer: dict[str, Any]
) -> None:
    with refund_rig(db_url) as rig:
        payment = rig.paid("unapplied-inquiry")
        assert taken_then(rig, payment, status=503).status is RefundStatus.IN_DOUBT
        rig.clock.advance(PAST_THE_CLAIM)
        rig.sim.faults.response(INQUIRY_PATH, fields=answer)  # cancelAmt stays "50000"
        Reconciler(rig.service).repair_open_intents()
        assert cancel_outcomes(rig, payment) != [REPAIRED_NOT_REFUNDED]
        again = rig.service.cancel(payment.id, request_id="rf-1")
        assert again.status is not RefundStatus.FAILED, again


def put_state(store: SqlStore, payment: Instance, state: str) -> None:
    """Write a payment's state with plain SQL, as a damaged row (or its repair) would be."""
    with store.engine.begin() as conn:
        statement = text("update flow_instance set state = :s where id = :i")
        conn.execute(statement, {"s": state, "i": payment.id})


def test_intents_no_repair_can_close_do_not_starve_a_lost_refund_forever(db_url: str) -> None:
    # One such intent against a limit of one per pass stands for a limit's worth (100 by
    # default) of them: a retired flow's payments, say, each with a call left open.
    with refund_rig(db_url) as rig:
        store = database(rig.engine)
        damaged = rig.paid("older-damaged")
        rig.service.calls.record(damaged.id, Call.INQUIRY, at=rig.clock.now(), tx_id=damaged.tx_id)
        with store.engine.begin() as conn:
            conn.execute(
                text("update flow_instance set state = 'limbo' where id = :i"), {"i": damaged.id}
            )
        rig.clock.advance(timedelta(seconds=1))
        payment = rig.paid("newer-lost")
        assert taken_then(rig, payment, status=503).status is RefundStatus.IN_DOUBT
        rig.clock.advance(PAST_THE_CLAIM)
        for _ in range(3):
            Reconciler(rig.service, limit=1).repair_open_intents()
        assert cancel_outcomes(rig, payment) == [REPAIRED_REFUNDED]
        with store.engine.begin() as conn:  # put it right, for the rig's audit
            conn.execute(
                text("update flow_instance set state = 'paid' where id = :i"), {"i": damaged.id}
            )


def test_a_repair_that_outlasts_its_claim_does_not_close_a_reopened_intent(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with gated_rig(db_url, CANCEL_PATH) as (rig, gate):
        payment = rig.paid("stale-repair")
        with cancel_in_background(rig, payment, gate) as cancelling:
            # Past rf-1's claim, a repair asks NICEPAY (nothing refunded yet) and is held
            # until its own claim has run out and another replica's repair came and went.
            stale = PausedRepair(rig, monkeypatch)
            after_its_claim = PAST_THE_WAIT + DEFAULT_LEASE + timedelta(minutes=1)
            Reconciler(rig.service).repair_open_intents(now=rig.clock.now() + after_its_claim)
            assert cancel_outcomes(rig, payment) == [REPAIRED_NOT_REFUNDED]
            rig.sim.faults.response(CANCEL_PATH, status=503, process=True)  # refunded, then lost
        assert cancelling.result().status is RefundStatus.IN_DOUBT
        assert cancel_outcomes(rig, payment) == [None]  # opened again, for a later repair
        stale.finish()
        monkeypatch.undo()
        assert rig.refunded_at_nicepay(payment) == "50000"
        # The held repair asked before the cancel reached NICEPAY: it proves nothing of it.
        assert cancel_outcomes(rig, payment) != [REPAIRED_NOT_REFUNDED]
        again = rig.service.cancel(payment.id, request_id="rf-1")
        assert again.status is not RefundStatus.FAILED, again


def test_a_payment_id_with_a_nul_is_refused_alike_on_every_database(db_url: str) -> None:
    with refund_rig(db_url) as rig:
        payment = rig.paid("nul-id")
        with pytest.raises((InvalidRefundRequest, InstanceNotFound)):
            rig.service.cancel(f"{payment.id}\x00", request_id="rf-1", amount="50000")
        assert rig.service.calls.of_instance(payment.id)[-1].call != Call.CANCEL
        assert rig.cancels_sent(payment) == 0


def test_a_repair_does_not_close_a_cancel_that_renewed_its_hold_and_went_out_after_it_read(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with gated_rig(db_url, CANCEL_PATH) as (rig, gate):
        payment = rig.paid("renewed-late")
        stepped, go = threading.Event(), threading.Event()
        fire = rig.engine.fire_with_retry

        def stall(*args: Any, **kwargs: Any) -> Any:
            fired = fire(*args, **kwargs)
            if args[1] == REQUEST_REFUND:  # the cancel's process stalls before it sends
                stepped.set()
                assert go.wait(GATE_LIMIT)
            return fired

        rig.engine.fire_with_retry = stall  # type: ignore[method-assign]
        gate.close()
        with ThreadPoolExecutor(1) as pool:
            cancelling = pool.submit(
                rig.service.cancel, payment.id, request_id="rf-1", amount="50000"
            )
            assert stepped.wait(GATE_LIMIT)
            # A reconciler past the cancel's wait claims the payment and asks NICEPAY: nothing.
            repairing = PausedRepair(rig, monkeypatch)
            # Its inquiry outlasts its own claim; the stalled cancel wakes, renews and sends.
            rig.clock.advance(PAST_THE_WAIT + DEFAULT_LEASE + timedelta(minutes=1))
            go.set()
            gate.wait_for_call()
            (repair,) = repairing.finish()
            monkeypatch.undo()
            assert repair.outcome == LEFT_OPEN  # its inquiry predates the send
            assert cancel_outcomes(rig, payment) == [None]
            asked_again = rig.service.cancel(payment.id, request_id="rf-1")
            assert asked_again.status is not RefundStatus.FAILED
            gate.open()
            refund = cancelling.result(GATE_LIMIT)
        assert told(refund) == (RefundStatus.SUCCEEDED, "refunded", "50000")
        assert cancel_outcomes(rig, payment) == ["answered"]
        assert rig.refunded_at_nicepay(payment) == "50000"
