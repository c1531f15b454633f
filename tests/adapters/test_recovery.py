"""Call intents and their repair: every NICEPAY call is written down first, and the reconciler
repairs what a stopped process (or a lost answer) left open, on SQLite and PostgreSQL.

NICEPAY is the simulator in-process (it keeps transactions, settles them when told, and carries out
cancels by its wallet rules); answers it would not give are armed as response faults. A process
that stops in the middle of a call is played by its line raising :class:`ProcessStopped` once the
request has reached NICEPAY: nothing after it runs, exactly what a killed process leaves in the
database.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from adapters.errors import CallInDoubt, ProviderError, ProviderTimeout, RefundError
from adapters.nicepay.client import CANCEL_PATH, INQUIRY_PATH, PAYMENT_PATH, REGISTRATION_PATH
from adapters.reconcile.deadlines import run_due
from adapters.reconcile.intents import Call
from adapters.reconcile.journal import CallIntent
from adapters.reconcile.recovery import INTENT_GRACE, Reconciler
from adapters.refunds import RefundStatus
from fsm.definition import Actor
from fsm.errors import ConfigurationError, TransitionNotAllowed
from fsm.model import Instance
from fsm.store.sql import SqlStore
from fsm.store.tables import INSTANCE_TABLE
from tests.adapters.mock_nicepay import Forward, ServiceRig, inquiries_sent
from tests.adapters.values import AMOUNT, payment_order, refusal, registration
from tests.conftest import database

PAST_GRACE = INTENT_GRACE + timedelta(seconds=1)
OWNER = "reconciler-under-test"


class ProcessStopped(Exception):
    """The merchant's process stopped while this call was on the way."""


def reconciler(rig: ServiceRig) -> Reconciler:
    return Reconciler(rig.service, owner=OWNER)


def intents(rig: ServiceRig, payment_id: str) -> list[tuple[str, str | None]]:
    """The payment's calls as ``(call, outcome)``; ``None`` while a call is open."""
    return [(i.call, i.outcome) for i in rig.service.calls.of_instance(payment_id)]


def cancels(rig: ServiceRig, payment_id: str) -> list[str | None]:
    """The outcomes of the payment's cancels, in order."""
    return [outcome for call, outcome in intents(rig, payment_id) if call == Call.CANCEL]


def open_intent(rig: ServiceRig, payment_id: str) -> CallIntent:
    (only,) = [i for i in rig.service.calls.of_instance(payment_id) if i.finished_at is None]
    return only


def stop_during(rig: ServiceRig, path: str) -> None:
    """The next call to ``path`` reaches NICEPAY, and its process stops before the answer."""

    def stopped(request: httpx.Request, nicepay: Forward) -> httpx.Response:
        nicepay(request)
        raise ProcessStopped

    rig.line.intercept(path, stopped)


def claimed_by(store: SqlStore, payment_id: str) -> str | None:
    query = select(INSTANCE_TABLE.c.claimed_by).where(INSTANCE_TABLE.c.id == payment_id)
    with store.engine.connect() as conn:
        owner: str | None = conn.execute(query).scalar_one()
    return owner


def redirected(rig: ServiceRig, wallet: str = "dana", payment_id: str = "pay-1") -> Instance:
    """A payment whose customer is on the wallet's page."""
    return rig.service.start_payment(payment_order(wallet), payment_id=payment_id).instance


def paid(rig: ServiceRig, wallet: str = "linkaja") -> Instance:
    payment = redirected(rig, wallet)
    rig.sim.approve(payment.tx_id or "")
    assert rig.service.check_status(payment.id).state == "paid"
    return rig.engine.get(payment.id)


def cut_short_inquiry(rig: ServiceRig) -> Instance:
    """A payment whose process stopped while its inquiry was on the way; NICEPAY says paid."""
    payment = redirected(rig)
    stop_during(rig, INQUIRY_PATH)
    with pytest.raises(ProcessStopped):
        rig.service.check_status(payment.id)
    rig.sim.approve(payment.tx_id or "")
    return rig.engine.get(payment.id)


def cancel_in_doubt(rig: ServiceRig, payment: Instance, *, reached: bool = True) -> None:
    """The cancel's answer is lost in transport; it was carried out if it ``reached`` NICEPAY."""
    rig.sim.faults.response(CANCEL_PATH, timeout=True, process=reached)
    refund = rig.service.cancel(payment.id, request_id="rf-1")
    assert refund.status is RefundStatus.IN_DOUBT
    assert open_intent(rig, payment.id).call == Call.CANCEL


# --- every call is recorded, and closed by its answer ------------------------------------------


def test_every_answered_call_leaves_a_finished_intent(rig: ServiceRig) -> None:
    payment = redirected(rig, "shopeepay")
    tx_id = payment.tx_id or ""
    rig.sim.approve(tx_id)
    rig.service.check_status(payment.id)
    assert rig.service.cancel(payment.id, request_id="rf-1").state == "voided"
    # the cancel stays open until the inquiry that follows it has stored the void
    assert intents(rig, payment.id) == [
        (Call.REGISTRATION, "answered"),
        (Call.PAYMENT_LINKS, "answered"),
        (Call.INQUIRY, "answered"),
        (Call.CANCEL, "answered"),
        (Call.INQUIRY, "answered"),  # NICEPAY's total, asked before the cancel is sent
        (Call.INQUIRY, "answered"),
    ]
    recorded = rig.service.calls.of_instance(payment.id)
    assert all(i.finished_at is not None and i.tx_id == tx_id for i in recorded[1:])
    assert recorded[0].request == {"referenceNo": "ORD-1", "amt": AMOUNT, "mitraCd": "ESHP"}


@pytest.mark.parametrize(
    ("call", "path", "code", "wallet"),
    [
        (Call.REGISTRATION, REGISTRATION_PATH, "9752", "dana"),
        (Call.PAYMENT_LINKS, PAYMENT_PATH, "9010", "shopeepay"),
    ],
)
def test_a_refusal_while_starting_closes_the_intent_with_its_code(
    rig: ServiceRig, call: Call, path: str, code: str, wallet: str
) -> None:
    rig.sim.faults.response(path, body=refusal(code))
    with pytest.raises(ProviderError):
        redirected(rig, wallet)
    assert intents(rig, "pay-1")[-1] == (call, f"refused:{code}")
    assert rig.service.calls.still_open(recorded_before=rig.clock.now()) == []


def test_a_refusal_after_payment_closes_the_intent_with_its_code(rig: ServiceRig) -> None:
    payment = paid(rig)
    rig.sim.faults.response(INQUIRY_PATH, body=refusal("9010"))
    with pytest.raises(ProviderError):
        rig.service.check_status(payment.id)
    assert intents(rig, payment.id)[-1] == (Call.INQUIRY, "refused:9010")
    rig.sim.faults.response(CANCEL_PATH, body=refusal("9314"))
    refund = rig.service.cancel(payment.id, request_id="rf-1")  # declined: an answer, no error
    assert (refund.status, refund.provider_code) == (RefundStatus.DECLINED, "9314")
    assert cancels(rig, payment.id) == ["refused:9314"]
    assert rig.service.calls.still_open(recorded_before=rig.clock.now()) == []


def test_a_lost_answer_closes_the_intent_except_a_cancels(rig: ServiceRig) -> None:
    payment = paid(rig)
    rig.sim.faults.response(INQUIRY_PATH, timeout=True, times=2)  # both of the client's tries
    with pytest.raises(ProviderTimeout):
        rig.service.check_status(payment.id)
    assert intents(rig, payment.id)[-1] == (Call.INQUIRY, "failed:ProviderTimeout")
    cancel_in_doubt(rig, payment)
    assert cancels(rig, payment.id) == [None]


# --- the reconciler's repairs ------------------------------------------------------------------


def test_a_registration_lost_without_its_txid_is_failed_and_never_sent_again(
    rig: ServiceRig,
) -> None:
    stop_during(rig, REGISTRATION_PATH)
    with pytest.raises(ProcessStopped):
        redirected(rig)
    assert rig.engine.get("pay-1").state == "registration_sent"
    sent = len(rig.line.requests)
    rig.clock.advance(PAST_GRACE)  # the registration's own deadline (1 minute) has passed too
    done = reconciler(rig).run_once()
    ((repair,), deadlines) = (done.repairs, done.deadlines)
    assert (repair.call, repair.before, repair.after, repair.error) == (
        Call.REGISTRATION,
        "registration_sent",
        "registration_failed",
        None,
    )
    assert deadlines == []  # repaired first: the timer had nothing left to fail
    failure = rig.engine.history("pay-1")[-1]
    assert (failure.event, failure.actor) == ("fail_registration", Actor.TIMER)
    assert (failure.payload["error"], failure.payload["referenceNo"]) == ("AnswerLost", "ORD-1")
    assert "lost" in failure.payload["detail"]
    assert len(rig.line.requests) == sent  # nothing asked or registered again
    assert intents(rig, "pay-1") == [(Call.REGISTRATION, "repaired:registration_failed")]


def test_a_deadline_waits_while_its_payments_call_is_unanswered(rig: ServiceRig) -> None:
    stop_during(rig, REGISTRATION_PATH)
    with pytest.raises(ProcessStopped):
        redirected(rig)
    rig.clock.advance(timedelta(seconds=90))  # registration_sent's minute has passed, not grace
    early = reconciler(rig).run_once()
    assert (early.repairs, early.deadlines) == ([], [])
    assert rig.engine.get("pay-1").state == "registration_sent"
    assert claimed_by(database(rig.engine), "pay-1") is None
    rig.clock.advance(INTENT_GRACE)
    (repair,) = reconciler(rig).run_once().repairs
    assert repair.after == "registration_failed"
    assert rig.engine.history("pay-1")[-1].payload["error"] == "AnswerLost"


def test_a_registration_whose_txid_was_stored_is_repaired_by_an_inquiry(rig: ServiceRig) -> None:
    # What a process leaves that stopped after storing NICEPAY's answer, before closing its call.
    engine = rig.engine
    payment = engine.start("ewallet_payment", instance_id="pay-1", wallet="dana", amount=AMOUNT)
    engine.fire(payment.id, "send_registration", actor=Actor.MERCHANT, idempotency_key="register")
    rig.service.calls.record(
        payment.id, Call.REGISTRATION, at=rig.clock.now(), reference_no="ORD-1"
    )
    tx_id = rig.client.register(registration("ORD-1")).tx_id or ""  # what NICEPAY answered
    rig.sim.approve(tx_id)
    engine.fire(
        payment.id,
        "accept_registration",
        actor=Actor.PROVIDER_RESPONSE,
        idempotency_key=f"registered:{tx_id}",
        payload={"tx_id": tx_id, "reference_no": "ORD-1"},
    )
    rig.clock.advance(PAST_GRACE)
    (repair,) = reconciler(rig).repair_open_intents()
    assert (repair.before, repair.after, repair.outcome) == ("registered", "paid", "inquired")
    assert inquiries_sent(rig) == 1
    assert intents(rig, payment.id) == [
        (Call.REGISTRATION, "repaired:paid"),
        (Call.INQUIRY, "answered"),
    ]


def test_an_inquiry_cut_short_is_asked_again_and_applied(rig: ServiceRig) -> None:
    payment = cut_short_inquiry(rig)
    assert payment.state == "status_check_requested"
    rig.clock.advance(PAST_GRACE)
    (repair,) = reconciler(rig).repair_open_intents()
    assert (repair.call, repair.before, repair.after) == (
        Call.INQUIRY,
        "status_check_requested",
        "paid",
    )
    assert rig.engine.history(payment.id)[-1].actor == Actor.STATUS_INQUIRY
    assert intents(rig, payment.id)[-2:] == [
        (Call.INQUIRY, "repaired:paid"),
        (Call.INQUIRY, "answered"),
    ]


def test_payment_links_cut_short_are_repaired_by_an_inquiry(rig: ServiceRig) -> None:
    stop_during(rig, PAYMENT_PATH)
    with pytest.raises(ProcessStopped):
        redirected(rig, "shopeepay")
    assert open_intent(rig, "pay-1").call == Call.PAYMENT_LINKS
    rig.clock.advance(PAST_GRACE)
    (repair,) = reconciler(rig).repair_open_intents()
    # NICEPAY has it unpaid: the payment waits, polled from now on by its deadline
    assert (repair.before, repair.after) == ("payment_requested", "payment_pending")
    assert rig.service.calls.still_open(recorded_before=rig.clock.now()) == []


@pytest.mark.parametrize(
    ("wallet", "paid_for", "reversed_to"),
    [("linkaja", timedelta(0), "voided"), ("dana", timedelta(hours=25), "refunded")],
)
def test_a_cancel_in_doubt_blocks_another_until_an_inquiry_settles_it(
    rig: ServiceRig, wallet: str, paid_for: timedelta, reversed_to: str
) -> None:
    payment = paid(rig, wallet)
    rig.clock.advance(paid_for)  # NICEPAY voids a DANA payment for a day, then refunds it
    cancel_in_doubt(rig, payment)  # it reached NICEPAY; only the answer was lost
    sent = len(rig.line.requests)
    with pytest.raises(CallInDoubt) as doubt:
        rig.service.cancel(payment.id, request_id="rf-2")
    assert (doubt.value.instance_id, doubt.value.call) == (payment.id, Call.CANCEL)
    again = rig.service.cancel(payment.id, request_id="rf-1")  # the first, asked again
    assert again.status is RefundStatus.IN_DOUBT  # its call left it open: the answer was lost
    assert len(rig.line.requests) == sent  # neither was sent

    rig.clock.advance(INTENT_GRACE - timedelta(seconds=1))
    assert reconciler(rig).repair_open_intents() == []  # perhaps its process still waits
    assert len(rig.line.requests) == sent
    rig.clock.advance(timedelta(seconds=2))
    (repair,) = reconciler(rig).repair_open_intents()
    assert (repair.call, repair.before, repair.after) == (Call.CANCEL, "paid", reversed_to)
    assert intents(rig, payment.id)[-3:] == [
        (Call.CANCEL, "repaired:refunded"),
        (Call.INQUIRY, "answered"),  # the cancel's own, before it was sent
        (Call.INQUIRY, "answered"),  # the repair's
    ]
    refund = rig.service.cancel(payment.id, request_id="rf-1")
    assert (refund.status, refund.state, refund.refunded_amount) == (
        RefundStatus.SUCCEEDED,
        reversed_to,
        AMOUNT,
    )
    with pytest.raises(RefundError):  # nothing left to refund: refused here, never sent
        rig.service.cancel(payment.id, request_id="rf-3")
    assert len(rig.line.sent(CANCEL_PATH)) == 1


def test_a_cancel_that_never_reached_nicepay_leaves_the_payment_paid(rig: ServiceRig) -> None:
    payment = paid(rig)
    cancel_in_doubt(rig, payment, reached=False)
    rig.clock.advance(PAST_GRACE)
    (repair,) = reconciler(rig).repair_open_intents()
    assert (repair.before, repair.after, repair.error) == ("paid", "paid", None)
    assert cancels(rig, payment.id) == ["repaired:not_refunded"]
    first = rig.service.cancel(payment.id, request_id="rf-1")  # asked again: it never happened
    assert (first.status, first.state) == (RefundStatus.FAILED, "paid")
    second = rig.service.cancel(payment.id, request_id="rf-2")  # no longer in doubt: sent
    assert (second.status, second.state) == (RefundStatus.SUCCEEDED, "voided")
    assert len(rig.line.sent(CANCEL_PATH)) == 2


def test_repairs_come_before_deadlines_in_one_pass(rig: ServiceRig) -> None:
    payment = paid(rig)
    cancel_in_doubt(rig, payment)  # it reached NICEPAY, which voided the payment
    rig.clock.advance(timedelta(minutes=11))  # paid's 10 minutes: confirm the order
    done = reconciler(rig).run_once()
    assert [(r.call, r.after) for r in done.repairs] == [(Call.CANCEL, "voided")]
    assert done.deadlines == []  # voided is final: no order was confirmed
    assert "confirm_order" not in [r.event for r in rig.engine.history(payment.id)]


def test_a_payment_another_reconciler_holds_is_left_to_it(rig: ServiceRig) -> None:
    payment = cut_short_inquiry(rig)
    rig.clock.advance(PAST_GRACE)
    store = database(rig.engine)
    lease = timedelta(minutes=1)
    assert rig.service.leases.claim(
        payment.id, owner="other-replica", now=rig.clock.now(), lease=lease
    )
    asked = inquiries_sent(rig)  # the one cut short
    assert reconciler(rig).repair_open_intents() == []
    assert inquiries_sent(rig) == asked
    assert claimed_by(store, payment.id) == "other-replica"
    rig.clock.advance(lease + timedelta(seconds=1))  # the other replica stopped: its lease lapses
    (repair,) = reconciler(rig).repair_open_intents()
    assert repair.after == "paid"
    assert claimed_by(store, payment.id) is None


def test_a_repair_whose_inquiry_fails_keeps_the_intent_open(rig: ServiceRig) -> None:
    payment = cut_short_inquiry(rig)
    stuck = open_intent(rig, payment.id)
    rig.sim.faults.response(INQUIRY_PATH, status=503, times=2)
    rig.clock.advance(PAST_GRACE)
    done = reconciler(rig).run_once()
    (repair,) = done.repairs
    assert (repair.outcome, repair.after) == ("open", "status_check_requested")
    assert repair.error
    assert done.failed
    assert open_intent(rig, payment.id) == stuck
    assert claimed_by(database(rig.engine), payment.id) is None  # released for the next pass
    rig.clock.advance(timedelta(minutes=2))
    (retried,) = reconciler(rig).run_once().repairs
    assert (retried.after, retried.error) == ("paid", None)


@pytest.mark.parametrize(
    ("grace", "lease", "limit"),
    [
        (timedelta(0), INTENT_GRACE, 1),
        (timedelta(seconds=-1), INTENT_GRACE, 1),
        (INTENT_GRACE, timedelta(0), 1),
        (INTENT_GRACE, INTENT_GRACE, 0),
    ],
)
def test_a_reconciler_needs_a_positive_grace_lease_and_limit(
    rig: ServiceRig, grace: timedelta, lease: timedelta, limit: int
) -> None:
    with pytest.raises(ConfigurationError):
        Reconciler(rig.service, grace=grace, lease=lease, limit=limit)


# --- what a live call and the reconciler may not do to each other ------------------------------


def test_a_cancel_answered_then_an_inquiry_refused_stays_in_doubt(rig: ServiceRig) -> None:
    payment = paid(rig, "shopeepay")  # partial refunds are ShopeePay's (and DANA's)

    def then_refuse_the_inquiry(request: httpx.Request, nicepay: Forward) -> httpx.Response:
        answer = nicepay(request)  # the cancel is carried out; the inquiry after it is refused
        rig.sim.faults.response(INQUIRY_PATH, body=refusal("9999", "inquiry unavailable"))
        return answer

    rig.line.intercept(CANCEL_PATH, then_refuse_the_inquiry)
    refund = rig.service.cancel(payment.id, request_id="rf-1", amount="5000")
    assert refund.status is RefundStatus.IN_DOUBT
    assert open_intent(rig, payment.id).call == Call.CANCEL  # NICEPAY accepted it: in doubt
    cancels = len(rig.line.sent(CANCEL_PATH))
    with pytest.raises(CallInDoubt):
        rig.service.cancel(payment.id, request_id="rf-2", amount="5000")
    assert rig.service.cancel(payment.id, request_id="rf-1").status is RefundStatus.IN_DOUBT
    assert len(rig.line.sent(CANCEL_PATH)) == cancels  # no second refund went out


def test_a_registration_answered_after_the_reconciler_failed_it_hands_out_no_step(
    rig: ServiceRig,
) -> None:
    def failed_meanwhile(request: httpx.Request, nicepay: Forward) -> httpx.Response:
        # The live call outlasted the grace: a reconciler took it for lost and failed it.
        rig.clock.advance(PAST_GRACE)
        (repair,) = reconciler(rig).repair_open_intents()
        assert repair.after == "registration_failed"
        return nicepay(request)

    rig.line.intercept(REGISTRATION_PATH, failed_meanwhile)
    with pytest.raises(TransitionNotAllowed):
        redirected(rig)
    payment = rig.engine.get("pay-1")
    assert (payment.state, payment.tx_id) == ("registration_failed", None)
    (late,) = rig.engine.rejections("pay-1")
    assert late.event == "accept_registration"
    assert late.payload["tx_id"] == rig.tx_id("ORD-1")  # the tXid NICEPAY gave is kept
    assert rig.line.sent(PAYMENT_PATH) == []


def test_an_inquiry_nicepay_refuses_for_good_no_longer_holds_the_deadlines(
    rig: ServiceRig,
) -> None:
    payment = cut_short_inquiry(rig)
    invalid = refusal("9010", "Invalid merchantToken")
    rig.sim.faults.response(INQUIRY_PATH, body=invalid, times=None)  # from now on, every time
    rig.clock.advance(PAST_GRACE)
    (repair,) = reconciler(rig).repair_open_intents()
    assert (repair.outcome, repair.error is not None) == ("unrepaired", True)
    # The registration, the inquiry cut short (closed by the repair), the repair's own inquiry.
    assert [outcome for _, outcome in intents(rig, payment.id)] == [
        "answered",
        "unrepaired:InvalidToken",
        "refused:9010",
    ]
    due = rig.engine.get(payment.id).deadline_at  # backed off: as long as the payment is old
    assert due is not None
    rig.clock.advance(due - rig.clock.now())
    (run,) = reconciler(rig).run_once().deadlines  # the status check's deadline runs again
    assert run.instance_id == payment.id


def test_a_payment_whose_lease_lapsed_mid_pass_is_left_to_its_new_holder(
    rig: ServiceRig,
) -> None:
    first, second = (
        rig.service.start_payment(
            payment_order("linkaja", f"ORD-{n}"), payment_id=f"pay-{n}"
        ).instance
        for n in (1, 2)
    )
    lease = timedelta(seconds=30)

    def slow_inquiry(request: httpx.Request, nicepay: Forward) -> httpx.Response:
        # The first inquiry outlasts the lease; another reconciler takes the second payment.
        rig.clock.advance(lease + timedelta(seconds=1))
        assert rig.service.leases.claim(second.id, owner="other", now=rig.clock.now(), lease=lease)
        return nicepay(request)

    rig.clock.advance(timedelta(minutes=6))  # LinkAja's 5 minutes have passed for both
    rig.line.intercept(INQUIRY_PATH, slow_inquiry)
    before = inquiries_sent(rig)
    runs = run_due(rig.service, owner=OWNER, lease=lease)
    assert [run.instance_id for run in runs] == [first.id]
    assert claimed_by(database(rig.engine), second.id) == "other"
    assert inquiries_sent(rig) == before + 1  # the second payment was not asked about
